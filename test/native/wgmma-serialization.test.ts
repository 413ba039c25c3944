// Hopper's warpgroup MMA runs asynchronously only where ptxas can prove no other instruction
// touches a running wgmma's registers; where it cannot, it serializes every wgmma of the kernel
// and says so in one "Potential Performance Loss" line (C7510-C7520), a warning nothing else
// surfaces. The prefill attention kernel carried its score accumulators around its loop and ran
// so for months (H200, four 2048-token prompts: 722 us a layer serialized, 628 us not). This
// compiles every file that uses wgmma.cuh for sm_90a, as the CUDA build does, and fails on that
// line. It needs nvcc only (no GPU, no cuBLAS: the kernels include no cuBLAS header).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../native/binding.js';

function findNvcc(): string | null {
  if (process.env.CUDACXX) return process.env.CUDACXX;
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  return existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null;
}

const nvcc = findNvcc();
const cudaDir = join(packageRoot(), 'native', 'cuda');
const wgmmaFiles = readdirSync(cudaDir)
  .filter((f) => f.endsWith('.cu') && readFileSync(join(cudaDir, f), 'utf8').includes('"cuda/wgmma.cuh"'))
  .sort();

test('the wgmma kernels include the prefill attention and the row GEMM', () => {
  assert.ok(wgmmaFiles.includes('attention_prefill_sm90.cu'), wgmmaFiles.join(', '));
  assert.ok(wgmmaFiles.includes('gemm_rows.cu'), wgmmaFiles.join(', '));
});

for (const file of wgmmaFiles) {
  test(`ptxas keeps ${file}'s wgmma asynchronous`, { skip: nvcc ? false : 'nvcc not found (CUDA toolkit absent)' }, () => {
    const scratch = mkdtempSync(join(tmpdir(), 'tachyon-wgmma-'));
    try {
      // The CUDA build's flags (native/cuda/CMakeLists.txt) for sm_90a, with ptxas's report.
      const args = ['-std=c++17', '-O3', '--use_fast_math', '-gencode', 'arch=compute_90a,code=sm_90a', '-Xptxas', '-v'];
      args.push('-I', join(packageRoot(), 'native'), '-c', join(cudaDir, file), '-o', join(scratch, 'kernel.o'));
      const run = spawnSync(nvcc!, args, { encoding: 'utf8' });
      assert.equal(run.status, 0, `${file} did not compile:\n${run.stderr}`);
      const merged = `${run.stdout}\n${run.stderr}`;  // ptxas reports on stderr
      const losses = merged.split('\n').filter((l) => l.includes('Potential Performance Loss'));
      assert.deepEqual(losses, [], `${file}: ptxas serializes wgmma:\n${losses.join('\n')}`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
}

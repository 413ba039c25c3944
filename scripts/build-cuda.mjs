// Builds the CUDA backend (native/cuda -> build/cuda/libtachyon_cuda.so) when
// nvcc, CMake and cuBLASLt are all found; otherwise says why in one line and
// exits 0, so CPU-only installs stay green. Runs after node-gyp in npm install.
//
// Where it looks for cuBLASLt (cublasLt.h and libcublasLt.so*): $CUBLASLT_ROOT,
// $CUDA_LIBS_HINT (set by the GPU machine's .device/activate), then the CUDA
// toolkit beside nvcc. $TACHYON_CUDA_ARCHS overrides the architectures
// (default "80;89;90a"); TACHYON_SKIP_CUDA=1 skips the build.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const skip = (why) => {
  console.log(`tachyon: CUDA backend skipped (${why}); the CPU backend is built`);
  process.exit(0);
};

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function findCublasLt(roots) {
  for (const r of roots.filter(Boolean)) {
    for (const inc of ['include', 'targets/x86_64-linux/include', 'targets/sbsa-linux/include']) {
      if (!existsSync(join(r, inc, 'cublasLt.h'))) continue;
      for (const lib of ['lib', 'lib64', 'targets/x86_64-linux/lib', 'targets/sbsa-linux/lib']) {
        const dir = join(r, lib);
        if (!existsSync(dir)) continue;
        const names = readdirSync(dir).filter((f) => /^libcublasLt\.so(\.\d+)*$/.test(f)).sort((a, b) => b.length - a.length);
        if (names.length) return { include: join(r, inc), library: join(dir, names[0]) };
      }
    }
  }
  return null;
}

if (process.env.TACHYON_SKIP_CUDA === '1') skip('TACHYON_SKIP_CUDA=1');
const nvcc = process.env.CUDACXX || which('nvcc') || (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null);
if (!nvcc) skip('nvcc not found');
const cmake = which('cmake');
if (!cmake) skip('cmake not found');
const toolkit = dirname(dirname(nvcc));
const cublas = findCublasLt([process.env.CUBLASLT_ROOT, process.env.CUDA_LIBS_HINT, toolkit, '/usr/local/cuda']);
if (!cublas) skip('cuBLASLt not found; set CUBLASLT_ROOT to a directory with include/cublasLt.h and lib/libcublasLt.so');

const build = join(root, 'build', 'cuda');
const args = [
  '-S', join(root, 'native', 'cuda'), '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-DCMAKE_CUDA_COMPILER=${nvcc}`,
  `-DCUBLASLT_INCLUDE_DIR=${cublas.include}`, `-DCUBLASLT_LIBRARY=${cublas.library}`,
];
if (process.env.TACHYON_CUDA_ARCHS) args.push(`-DCMAKE_CUDA_ARCHITECTURES=${process.env.TACHYON_CUDA_ARCHS}`);
console.log(`tachyon: building the CUDA backend with ${nvcc} and ${cublas.library}`);
try {
  execFileSync(cmake, args, { stdio: 'inherit' });
  execFileSync(cmake, ['--build', build, '-j'], { stdio: 'inherit' });
} catch {
  console.error('tachyon: the CUDA backend failed to build (see above); the CPU backend still works');
  process.exit(process.env.TACHYON_REQUIRE_CUDA === '1' ? 1 : 0);
}

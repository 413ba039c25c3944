// Builds the CUDA backend (native/cuda -> build/cuda/libtachyon_cuda.so) when
// nvcc, CMake and cuBLASLt are all found; otherwise says why in one line and
// exits 0, so CPU-only installs stay green. Runs after node-gyp in npm install.
//
// Where it looks for cuBLASLt (cublasLt.h and libcublasLt.so*): $CUBLASLT_ROOT,
// $CUDA_LIBS_HINT (set by the GPU machine's .device/activate), then the CUDA
// toolkit beside nvcc. $TACHYON_CUDA_ARCHS overrides the architectures
// (default "80;89;90a"); TACHYON_SKIP_CUDA=1 skips the build.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
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

// make rebuilds by modification time, and a tree copied without its times (the GPU machine's
// working-tree copy keeps the older times of files whose build outputs are newer) rebuilt nothing
// once. So each source's content hash is kept beside the build, and a file whose content changed
// since the last build is touched before it: make then rebuilds it and whatever includes it.
const sourcesFile = join(build, 'tachyon-sources.json');
function sourceHashes() {
  const hashes = {};
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(cu|cuh|h|cc|txt)$/.test(entry.name)) hashes[path] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(join(root, 'native', 'cuda'));
  walk(join(root, 'native', 'cpu'));
  return hashes;
}
const hashes = sourceHashes();
const built = existsSync(sourcesFile) ? JSON.parse(readFileSync(sourcesFile, 'utf8')) : null;
if (built) {
  const now = new Date();
  for (const [path, hash] of Object.entries(hashes)) if (built[path] !== hash) utimesSync(path, now, now);
}
const args = [
  '-S', join(root, 'native', 'cuda'), '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-DCMAKE_CUDA_COMPILER=${nvcc}`,
  `-DCUBLASLT_INCLUDE_DIR=${cublas.include}`, `-DCUBLASLT_LIBRARY=${cublas.library}`,
];
if (process.env.TACHYON_CUDA_ARCHS) args.push(`-DCMAKE_CUDA_ARCHITECTURES=${process.env.TACHYON_CUDA_ARCHS}`);
console.log(`tachyon: building the CUDA backend with ${nvcc} and ${cublas.library}`);
try {
  execFileSync(cmake, args, { stdio: 'inherit' });
  execFileSync(cmake, ['--build', build, '-j'], { stdio: 'inherit' });
  mkdirSync(build, { recursive: true });
  writeFileSync(sourcesFile, JSON.stringify(hashes));
} catch {
  console.error('tachyon: the CUDA backend failed to build (see above); the CPU backend still works');
  process.exit(process.env.TACHYON_REQUIRE_CUDA === '1' ? 1 : 0);
}

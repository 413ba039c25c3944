import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../../native/binding.js';

/**
 * GPU tests run where the CUDA backend was built (npm run test:gpu on a GPU
 * machine). Elsewhere they skip, unless TACHYON_REQUIRE_GPU=1 makes that a failure.
 */
export function gpuSkipReason(): string | false {
  if (process.env.TACHYON_REQUIRE_GPU === '1') return false;
  const lib = join(packageRoot(), 'build', 'cuda', 'libtachyon_cuda.so');
  return existsSync(lib) ? false : `the CUDA backend is not built (${lib}); run npm run test:gpu on a GPU machine`;
}

/**
 * Runs `load` with environment variables set, then puts them back as they were. The CUDA
 * backend reads its knobs (TACHYON_BATCH_INVARIANT, TACHYON_FUSED_GEMV, ...) when a runtime loads.
 */
export async function withEnv<T>(vars: Record<string, string>, load: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await load();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

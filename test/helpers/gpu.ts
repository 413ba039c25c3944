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

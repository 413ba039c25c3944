// Penalties, logit_bias and grammar masks on the CUDA backend: the CPU backend's checks
// (test/helpers/adjustment-checks.ts). Runs with npm run test:gpu.
import { join } from 'node:path';
import { describe } from 'node:test';

import { Runtime } from '../../native/index.js';
import { adjustmentChecks } from '../helpers/adjustment-checks.js';
import { MODELS_DIR } from '../helpers/fixtures.js';
import { gpuSkipReason } from '../helpers/gpu.js';

const skip = gpuSkipReason();

for (const dtype of ['bf16', 'fp8'] as const) {
  describe(`CUDA backend (${dtype}): penalties and grammar masks`, { skip }, () => {
    adjustmentChecks(
      () => Runtime.load({ modelDir: join(MODELS_DIR, 'llama-gqa-tied'), device: 'cuda', dtype, kvCacheBytes: 16 << 20, maxNumTokens: 256, maxNumSeqs: 8 }),
      { skip },
    );
  });
}

// Penalties and grammar masks on the CPU backend (the checks: test/helpers/adjustment-checks.ts).
import { join } from 'node:path';
import { describe } from 'node:test';

import { Runtime } from '../../native/index.js';
import { adjustmentChecks } from '../helpers/adjustment-checks.js';
import { MODELS_DIR } from '../helpers/fixtures.js';

describe('CPU backend: penalties and grammar masks', () => {
  adjustmentChecks(() => Runtime.load({ modelDir: join(MODELS_DIR, 'llama-gqa-tied'), kvCacheBytes: 16 * 1024 * 1024, maxNumSeqs: 8 }));
});

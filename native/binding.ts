import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's raw surface; only native/index.ts uses it. */
export interface NativeRuntimeHandle {
  load(): Promise<void>;
  info(): { numBlocks: number; blockSize: number; bytesPerBlock: number; numThreads: number; deviceName: string; deviceBytesUsed: number; weightDtype: string; gemmTuning: string; projectionWeightBytes: number };
  step(batch: object): Promise<NativeStepResult>;
  /** The running step's grammar bitmasks, or null and why they could not be computed (the step then fails). */
  provideMasks(masks: Int32Array | null, why?: string): void;
  close(): void;
}

export interface NativeStepResult {
  tokens: Int32Array;
  logprobs: Float32Array;
  topN: number;
  topIds: Int32Array;
  topLogprobs: Float32Array;
  logits?: Float32Array;
}

interface Addon {
  NativeRuntime: new (options: object) => NativeRuntimeHandle;
  backends: string;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the tachyon package root');
    dir = up;
  }
  return dir;
}

let addon: Addon | undefined;

export function loadAddon(): Addon {
  if (addon) return addon;
  const path = join(packageRoot(), 'build', 'Release', 'tachyon_native.node');
  if (!existsSync(path)) throw new Error(`native addon not built (${path} is missing); run npm install`);
  addon = createRequire(import.meta.url)(path) as Addon;
  return addon;
}

export { packageRoot };

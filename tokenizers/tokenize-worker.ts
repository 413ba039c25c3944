// A worker thread that encodes long texts so the event loop never waits on them.
import { parentPort, workerData } from 'node:worker_threads';

import type { EncodeOptions } from './tokenizer.js';
import { openTokenizer, type TokenizerSource } from './tokenizer-source.js';

export interface EncodeRequest {
  id: number;
  text: string;
  options: EncodeOptions;
}

export type EncodeReply = { id: number; ids: Int32Array } | { id: number; error: string };

const tokenizer = openTokenizer(workerData as TokenizerSource);
parentPort!.on('message', (req: EncodeRequest) => {
  try {
    const ids = Int32Array.from(tokenizer.encode(req.text, req.options));
    parentPort!.postMessage({ id: req.id, ids } satisfies EncodeReply, [ids.buffer]);
  } catch (e) {
    parentPort!.postMessage({ id: req.id, error: (e as Error).message } satisfies EncodeReply);
  }
});
parentPort!.postMessage({ ready: true });

import { join } from 'node:path';

import type { Engine } from '../../engine/engine.js';
import type { EngineRequest, RequestDelta } from '../../engine/types.js';
import { loadTokenizer, type Tokenizer } from '../../tokenizers/tokenizer.js';
import { TOKENIZERS_DIR } from './tokenizer-fixtures.js';

/** A byte-level tokenizer whose 1200 ids cover the fake and fixture models' vocabularies. */
export function testTokenizer(): Tokenizer {
  return loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-ranked'));
}

export interface Collected {
  tokens: number[];
  text: string;
  deltas: RequestDelta[];
  last: RequestDelta;
}

export async function collect(stream: AsyncIterable<RequestDelta>): Promise<Collected> {
  const deltas: RequestDelta[] = [];
  for await (const d of stream) deltas.push(d);
  return { tokens: deltas.flatMap((d) => d.tokenIds), text: deltas.map((d) => d.text).join(''), deltas, last: deltas[deltas.length - 1] };
}

let counter = 0;
export function request(prompt: number[], maxTokens: number, extra: Partial<EngineRequest> = {}): EngineRequest {
  return { id: `r${counter++}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens, ignoreEos: true }, ...extra };
}

export function run(engine: Engine, req: EngineRequest): Promise<Collected> {
  return collect(engine.submit(req));
}

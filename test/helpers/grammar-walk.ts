import type { GrammarService } from '../../guided/grammar-service.js';
import type { GuideSpec } from '../../guided/spec.js';
import type { TokenGuide } from '../../engine/types.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';

/** Token ids a guide's next mask allows (after it takes the token last given to advance()). */
export function allowedTokens(guide: TokenGuide, vocabSize: number): number[] {
  const row = new Int32Array(Math.ceil(vocabSize / 32));
  if (!guide.fillNextTokenBitmask(row)) throw new Error('the guide refused the token its mask allowed');
  const out: number[] = [];
  for (let id = 0; id < vocabSize; id++) if ((row[id >> 5] >>> (id & 31)) & 1) out.push(id);
  return out;
}

/**
 * Walks a guide as a sampler would, choosing uniformly among the allowed
 * tokens (a seeded generator), and the stop token as soon as it is allowed
 * (which ends the walk: the grammar is complete).
 * Returns the text of the tokens before the stop token, decoded by the tokenizer.
 */
export async function walk(service: GrammarService, tokenizer: Tokenizer, spec: GuideSpec, seed: number, maxTokens = 300): Promise<{ text: string; terminated: boolean }> {
  const guide = await service.guide(spec);
  const stops = new Set(service.vocab.stopIds);
  const ids: number[] = [];
  let state = seed >>> 0 || 1;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  try {
    let terminated = false;
    for (let i = 0; i < maxTokens && !terminated; i++) {
      const allowed = allowedTokens(guide, service.vocab.vocabSize);
      if (allowed.length === 0) throw new Error(`the grammar allows nothing after ${JSON.stringify(tokenizer.decode(ids))}`);
      const stop = allowed.find((id) => stops.has(id));
      // Tokens that are whole characters where there are any: xgrammar takes some 4-byte sequences that are not
      // UTF-8 (past U+10FFFF) as one character, which a uniform walk over byte tokens finds and a model does not.
      const whole = allowed.filter((id) => tokenizer.decode([id]).indexOf('\uFFFD') < 0);
      const pool = whole.length > 0 ? whole : allowed;
      const token = stop ?? pool[Math.floor(random() * pool.length)];
      guide.advance(token);
      if (stop === undefined) ids.push(token);
      else terminated = true;
    }
    // The last token is taken by the next fill, which must still succeed.
    if (!terminated) allowedTokens(guide, service.vocab.vocabSize);
    return { text: tokenizer.decode(ids), terminated };
  } finally {
    guide.dispose();
  }
}

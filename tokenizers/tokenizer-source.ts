import { loadNamedEncoding, type EncodingName } from './named-encodings.js';
import { loadTokenizer, type Tokenizer, type TokenizerEngine } from './tokenizer.js';

/** Where a tokenizer comes from: a model directory's tokenizer.json, or a named tiktoken encoding. */
export type TokenizerSource = { dir: string; engine?: TokenizerEngine } | { encoding: EncodingName };

export function openTokenizer(source: TokenizerSource): Tokenizer {
  return 'dir' in source ? loadTokenizer(source.dir, source.engine) : loadNamedEncoding(source.encoding);
}

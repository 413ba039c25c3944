import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { AddedTokenSplitter, type AddedToken } from './added-tokens.js';
import { bytesToByteLevel } from './byte-alphabet.js';
import { parseDecoder } from './decoders.js';
import { Tokenizer } from './tokenizer.js';
import { TiktokenEncoder } from './word-encoders.js';

/** tiktoken's own encodings, shipped inside the tiktoken package (no download). */
export const NAMED_ENCODINGS = ['cl100k_base', 'o200k_base'] as const;
export type EncodingName = (typeof NAMED_ENCODINGS)[number];

interface EncodingFile {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

/** A Tokenizer for a named tiktoken encoding; <|endoftext|> ends generation. */
export function loadNamedEncoding(name: EncodingName): Tokenizer {
  if (!NAMED_ENCODINGS.includes(name)) throw new Error(`unknown encoding ${JSON.stringify(name)} (known: ${NAMED_ENCODINGS.join(', ')})`);
  const path = createRequire(import.meta.url).resolve(`tiktoken/encoders/${name}.json`);
  const file = JSON.parse(readFileSync(path, 'utf8')) as EncodingFile;
  // Vocabulary as byte-level strings, so decoding shares the tokenizer.json path.
  const vocab = new Map<string, number>();
  for (const [bytes, rank] of compressedRanks(file.bpe_ranks)) vocab.set(bytesToByteLevel(bytes), rank);
  const added: AddedToken[] = Object.entries(file.special_tokens).map(([content, id]) => ({
    id, content, special: true, lstrip: false, rstrip: false, singleWord: false,
  }));
  const eos = file.special_tokens['<|endoftext|>'];
  return new Tokenizer(
    vocab, added, new AddedTokenSplitter(added),
    new TiktokenEncoder(file.bpe_ranks, file.pat_str, (t) => t, false),
    parseDecoder({ type: 'ByteLevel' }), { type: 'ByteLevel' }, [], [],
    { bos: null, eos: eos === undefined ? [] : [eos] },
  );
}

/** The tiktoken package's rank format: lines of "<tag> <first rank> <base64 token> <base64 token> ...". */
function* compressedRanks(text: string): Generator<[Buffer, number]> {
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 2) continue;
    const offset = Number(parts[1]);
    for (let i = 2; i < parts.length; i++) yield [Buffer.from(parts[i], 'base64'), offset + i - 2];
  }
}

import { bytesToByteLevel } from '../tokenizers/byte-alphabet.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { GuideError } from './spec.js';

/** The vocabulary as xgrammar's TokenizerInfo takes it. */
export interface GuideVocab {
  /** Token id -> the token's bytes in the GPT-2 byte alphabet; '' for special tokens and ids with no token (never allowed). */
  encoded: string[];
  vocabType: 'BYTE_LEVEL';
  /** The decoder drops one leading space of the output (SentencePiece's '▁'). */
  prependSpace: boolean;
  /** The model's vocabulary size (lm_head rows), which may be more than the tokenizer's. */
  vocabSize: number;
  stopIds: number[];
}

/**
 * Every token as the bytes it decodes to, written in the byte-level alphabet
 * whatever the tokenizer's own form: a token can be part of a UTF-8
 * character, which a JavaScript string (UTF-8 in WebAssembly) cannot hold,
 * and SentencePiece's '▁' and <0x0A> tokens become the bytes they stand for.
 */
export function guideVocabOf(tokenizer: Tokenizer, modelVocabSize: number): GuideVocab {
  const stream = tokenizer.streamingBytes();
  if (stream === null) throw new GuideError("guided decoding needs a tokenizer whose tokens decode to bytes one by one (ByteLevel or SentencePiece decoders); this model's decoder is not one");
  const encoded: string[] = new Array(modelVocabSize).fill('');
  for (let id = 0; id < Math.min(modelVocabSize, tokenizer.vocabSize); id++) {
    if (tokenizer.isSpecial(id) || tokenizer.idToTokenString(id) === undefined) continue;
    encoded[id] = bytesToByteLevel(stream.bytesOf(id));
  }
  return { encoded, vocabType: 'BYTE_LEVEL', prependSpace: stream.stripLeading > 0, vocabSize: modelVocabSize, stopIds: tokenizer.special.eos.filter((id) => id < modelVocabSize) };
}

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { AddedTokenSplitter, type AddedToken, type SplitOptions } from './added-tokens.js';
import { BYTE_TO_CHAR, CHAR_TO_BYTE, fromByteLevel } from './byte-alphabet.js';
import { buildMerges, type BpeModel } from './bpe.js';
import { byteOfToken, byteTokenName, parseDecoder, runDecoder, type DecodeStep } from './decoders.js';
import { parseNormalizer, parsePreTokenizer } from './pipeline.js';
import { NotTiktokenExpressible, toTiktokenRanks } from './tiktoken-ranks.js';
import { ByteLevelBpeEncoder, SentencePieceEncoder, TiktokenEncoder, type SegmentEncoder } from './word-encoders.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface EncodeOptions {
  /** Add the post-processor's tokens (BOS for Llama-style tokenizers). Default false. */
  addSpecialTokens?: boolean;
  /** Read special-token text in the input as control tokens. Default false: it is plain text. */
  parseSpecialTokens?: boolean;
  /** With parseSpecialTokens, [start, end) ranges that stay plain text (user content inside a chat template). */
  literalRanges?: [number, number][];
}

export interface SpecialTokens {
  bos: number | null;
  /** Every id that ends generation (tokenizer_config eos plus generation_config eos_token_id). */
  eos: number[];
}

/** What the token-count lower bound (Tokenizer.minTokens) needs to know beyond the vocabulary. */
export interface LengthBoundFacts {
  /** Most UTF-8 bytes of input per byte of normalized text: 1 when normalizing never shortens text, Infinity when nothing bounds it. */
  normalizerShrink: number;
  /** fuse_unk with unknown characters reachable: a run of them of any length becomes one token. */
  unboundedUnk: boolean;
}

/** A Hugging Face tokenizer.json, encoding to the same ids HF tokenizers produces. */
export class Tokenizer {
  readonly vocabSize: number;
  private readonly idToToken: Map<number, string>;
  private readonly specialIds: Set<number>;
  private readonly byteLevel: boolean;

  constructor(
    private readonly tokenToIdMap: Map<string, number>,
    private readonly added: AddedToken[],
    private readonly splitter: AddedTokenSplitter,
    private readonly encoder: SegmentEncoder,
    private readonly decoder: DecodeStep[],
    private readonly decoderJson: Json | null,
    private readonly prefix: number[],
    private readonly suffix: number[],
    readonly special: SpecialTokens,
    private readonly lengthFacts: LengthBoundFacts = { normalizerShrink: 1, unboundedUnk: false },
  ) {
    this.idToToken = new Map([...tokenToIdMap].map(([t, id]) => [id, t]));
    for (const a of added) this.idToToken.set(a.id, a.content);
    let maxId = -1;
    for (const id of this.idToToken.keys()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.specialIds = new Set(added.filter((a) => a.special).map((a) => a.id));
    this.byteLevel = encoder instanceof TiktokenEncoder || encoder instanceof ByteLevelBpeEncoder;
  }

  /** Which engine runs the merges: tiktoken, or the TypeScript BPE where tiktoken cannot be exact. */
  get engine(): 'tiktoken' | 'bpe' {
    return this.encoder.engine;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const split: SplitOptions = { parseSpecial: options.parseSpecialTokens ?? false, literalRanges: options.literalRanges };
    const ids: number[] = [];
    for (const seg of this.splitter.split(text, split)) {
      if ('id' in seg) ids.push(seg.id);
      else for (const id of this.encoder.encode(seg.text, seg.start === 0)) ids.push(id);
    }
    return options.addSpecialTokens ? this.prefix.concat(ids, this.suffix) : ids;
  }

  /**
   * The most UTF-8 bytes of input one token can stand for (Infinity when no
   * bound holds): the longest model token, in bytes of the text it matches
   * (byte-level tokens as their bytes, SentencePiece tokens as their UTF-8,
   * which counts '▁' as 3 bytes though it may stand for a 1-byte space),
   * times the normalizer's shrink factor, or the longest added token's
   * content (matched on the raw text), whichever is larger. Computed once,
   * on first use; TokenizerService asks at load.
   */
  get maxTokenBytes(): number {
    return this.bytesPerToken(true);
  }

  /** maxTokenBytes; without parseSpecial, special added tokens are not matched, so only the others count. */
  private bytesPerToken(parseSpecial: boolean): number {
    this.longest ??= this.longestTokens();
    const { model, added, addedPlain } = this.longest;
    return Math.max(model, parseSpecial ? added : addedPlain);
  }

  private longest: { model: number; added: number; addedPlain: number } | undefined;

  private longestTokens(): { model: number; added: number; addedPlain: number } {
    const { normalizerShrink, unboundedUnk } = this.lengthFacts;
    if (unboundedUnk || !Number.isFinite(normalizerShrink)) return { model: Infinity, added: 0, addedPlain: 0 };
    // An unknown token stands for one character: at most 4 bytes.
    let model = 4;
    for (const tok of this.tokenToIdMap.keys()) model = Math.max(model, this.byteLevel ? byteLevelLength(tok) : Buffer.byteLength(tok, 'utf8'));
    let added = 0;
    let addedPlain = 0;
    for (const a of this.added) {
      const n = Buffer.byteLength(a.content, 'utf8');
      added = Math.max(added, n);
      if (!a.special) addedPlain = Math.max(addedPlain, n);
    }
    return { model: model * normalizerShrink, added, addedPlain };
  }

  /**
   * A lower bound on encode(text, options).length, from the text's length
   * alone: every input byte is matched by some token and no token matches
   * more than maxTokenBytes of them. Whitespace that an added token with
   * lstrip/rstrip may swallow is not counted. With `enough`, the bound from
   * the UTF-16 length (no more than the UTF-8 length, and free to read) is
   * returned when it already reaches `enough`; otherwise the UTF-8 bytes are
   * counted (native speed, a few ms for megabytes). A prompt too long for
   * the context is thus refused without tokenizing it.
   */
  minTokens(text: string, options: EncodeOptions = {}, enough = Infinity): number {
    const around = options.addSpecialTokens ? this.prefix.length + this.suffix.length : 0;
    const parseSpecial = options.parseSpecialTokens ?? false;
    const per = this.bytesPerToken(parseSpecial);
    if (!Number.isFinite(per)) return around;
    if (this.added.some((a) => (a.lstrip || a.rstrip) && (parseSpecial || !a.special)))
      return around + Math.ceil((Buffer.byteLength(text, 'utf8') - whitespaceBytes(text)) / per);
    const quick = around + Math.ceil(text.length / per);
    return quick >= enough ? quick : around + Math.ceil(Buffer.byteLength(text, 'utf8') / per);
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (options.skipSpecialTokens && this.specialIds.has(id)) continue;
      const tok = this.idToToken.get(id);
      if (tok === undefined) throw new RangeError(`token id ${id} is not in the vocabulary`);
      tokens.push(tok);
    }
    return runDecoder(this.decoder, tokens);
  }

  /**
   * How to stream this tokenizer's text as bytes, when its decoder chain
   * allows: each token's bytes, concatenated and read as UTF-8, then at most
   * `stripLeading` spaces dropped from the very start. Null: use window decoding.
   */
  streamingBytes(): { bytesOf: (id: number) => Uint8Array; textOf: (id: number) => string | null; stripLeading: number } | null {
    if (this.streamForm === undefined) this.streamForm = this.deriveStreamForm();
    return this.streamForm;
  }

  private streamForm: ReturnType<Tokenizer['streamingBytes']> | undefined;

  private deriveStreamForm(): ReturnType<Tokenizer['streamingBytes']> {
    const kind = decoderKind(this.decoderJson);
    if (kind === null) return null;
    const cache: (Uint8Array | undefined)[] = [];
    const bytesOf = (id: number): Uint8Array => {
      let b = cache[id];
      if (b === undefined) {
        const tok = this.idToToken.get(id);
        if (tok === undefined) throw new RangeError(`token id ${id} is not in the vocabulary`);
        b = kind === 'byte-level' ? fromByteLevel(tok) : sentencePieceBytes(tok);
        cache[id] = b;
      }
      return b;
    };
    // A token whose bytes are whole characters streams as a cached string.
    const texts: (string | null | undefined)[] = [];
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const textOf = (id: number): string | null => {
      let t = texts[id];
      if (t === undefined) {
        try {
          t = strict.decode(bytesOf(id));
        } catch {
          t = null;
        }
        texts[id] = t;
      }
      return t;
    };
    return { bytesOf, textOf, stripLeading: kind === 'sentencepiece' ? 1 : 0 };
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenToIdMap.get(token) ?? this.added.find((a) => a.content === token)?.id;
  }

  idToTokenString(id: number): string | undefined {
    return this.idToToken.get(id);
  }

  /** Raw bytes of a model token (byte-level vocabularies), for tools that need them. */
  tokenBytes(id: number): Buffer {
    const tok = this.idToToken.get(id);
    if (tok === undefined) throw new RangeError(`token id ${id} is not in the vocabulary`);
    return this.byteLevel && !this.added.some((a) => a.id === id) ? fromByteLevel(tok) : Buffer.from(tok, 'utf8');
  }

  free(): void {
    this.encoder.free();
  }
}

/** Bytes a byte-level token stands for; characters outside the alphabet count their own UTF-8 (as fromByteLevel). */
function byteLevelLength(token: string): number {
  let n = 0;
  for (const ch of token) n += CHAR_TO_BYTE.has(ch) ? 1 : Buffer.byteLength(ch, 'utf8');
  return n;
}

/** UTF-8 bytes of the characters an added token's lstrip/rstrip swallows (JavaScript's \s, as added-tokens.ts matches). */
function whitespaceBytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) n += 1;
    else if (c === 0xa0) n += 2;
    else if (c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff) n += 3;
  }
  return n;
}

/**
 * How many times shorter in UTF-8 a normalizer can make text. Unicode forms:
 * 4, from a 4-byte compatibility letter that becomes one ASCII byte (U+1D7CE
 * -> '0' under NFKC); canonical composition reaches 3.5 (U+1FBE U+0308 U+0301
 * -> U+0390, 7 bytes to 2, under NFC), checked over every code point and every
 * decomposition. Lowercase: 3 (U+212A KELVIN SIGN -> 'k'). Replace: the
 * pattern's bytes over the content's.
 */
function normalizerShrink(n: Json | null): number {
  if (!n) return 1;
  switch (n.type) {
    case 'Sequence':
      return (n.normalizers as Json[]).reduce((f, step) => f * normalizerShrink(step), 1);
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return 4;
    case 'Lowercase':
      return 3;
    case 'Prepend':
      return 1;
    case 'Replace': {
      const to = Buffer.byteLength(String(n.content ?? ''), 'utf8');
      return to === 0 ? Infinity : Math.max(1, Buffer.byteLength(String(n.pattern?.String ?? ''), 'utf8') / to);
    }
    default:
      return Infinity;
  }
}

/** Can a run of unknown characters of any length fuse into one unknown token? */
function unkIsUnbounded(model: BpeModel, encoder: SegmentEncoder): boolean {
  if (model.unkId === null || !model.fuseUnk) return false;
  // Byte-level words are byte characters: unknown only when one is missing from the vocabulary.
  if (!(encoder instanceof SentencePieceEncoder)) return BYTE_TO_CHAR.some((c) => !model.vocab.has(c));
  // SentencePiece words: a character outside the vocabulary falls back to byte tokens when all of them exist.
  if (!model.byteFallback) return true;
  for (let b = 0; b < 256; b++) if (!model.vocab.has(byteTokenName(b))) return true;
  return false;
}

/** Decoder chains whose output is a plain concatenation of per-token bytes. */
function decoderKind(d: Json | null): 'byte-level' | 'sentencepiece' | null {
  if (d?.type === 'ByteLevel') return 'byte-level';
  const steps = d?.type === 'Sequence' ? (d.decoders as Json[]) : [];
  const llama2 =
    steps.length === 4 &&
    steps[0].type === 'Replace' && steps[0].pattern?.String === '▁' && steps[0].content === ' ' &&
    steps[1].type === 'ByteFallback' && steps[2].type === 'Fuse' &&
    steps[3].type === 'Strip' && steps[3].content === ' ' && steps[3].start === 1 && steps[3].stop === 0;
  return llama2 ? 'sentencepiece' : null;
}

function sentencePieceBytes(token: string): Uint8Array {
  const b = byteOfToken(token);
  return b !== null ? Uint8Array.of(b) : Buffer.from(token.split('▁').join(' '), 'utf8');
}

function parseAdded(list: Json[] | undefined): AddedToken[] {
  return (list ?? []).map((a) => ({
    id: a.id,
    content: a.content,
    special: !!a.special,
    lstrip: !!a.lstrip,
    rstrip: !!a.rstrip,
    singleWord: !!a.single_word,
  }));
}

function parseMergeList(merges: (string | [string, string])[]): [string, string][] {
  return merges.map((m) => {
    if (typeof m !== 'string') return m;
    const i = m.indexOf(' ', 1);
    return [m.slice(0, i), m.slice(i + 1)];
  });
}

/** Prefix and suffix ids of a TemplateProcessing post-processor's single-sequence template. */
function parsePostProcessor(p: Json | null): { prefix: number[]; suffix: number[] } {
  const none = { prefix: [], suffix: [] };
  if (!p || p.type === 'ByteLevel') return none;
  if (p.type === 'Sequence') {
    const parts = (p.processors as Json[]).map(parsePostProcessor);
    return { prefix: parts.flatMap((x) => x.prefix), suffix: parts.flatMap((x) => x.suffix) };
  }
  if (p.type !== 'TemplateProcessing') throw new Error(`post-processor ${JSON.stringify(p.type)} is not supported`);
  const out = { prefix: [] as number[], suffix: [] as number[] };
  let seenSequence = false;
  for (const item of p.single as Json[]) {
    if (item.Sequence) seenSequence = true;
    else if (item.SpecialToken) (seenSequence ? out.suffix : out.prefix).push(...p.special_tokens[item.SpecialToken.id].ids);
  }
  return out;
}

/**
 * auto: tiktoken when the merges can be expressed as tiktoken ranks (see
 * tiktoken-ranks.ts), else the TypeScript BPE, which applies HF's merge rules
 * exactly. tiktoken: tiktoken or an Error naming why it cannot. bpe: always the
 * TypeScript BPE.
 */
export type TokenizerEngine = 'auto' | 'tiktoken' | 'bpe';

function makeEncoder(j: Json, model: BpeModel, mergeList: [string, string][], engine: TokenizerEngine): SegmentEncoder {
  const normalize = parseNormalizer(j.normalizer);
  const pre = parsePreTokenizer(j.pre_tokenizer);
  if (pre.kind !== 'byte-level') {
    if (engine === 'tiktoken') throw new NotTiktokenExpressible('tiktoken runs byte-level BPE only; this tokenizer is SentencePiece-style');
    return new SentencePieceEncoder(model, pre, normalize);
  }
  const bpe = () => new ByteLevelBpeEncoder(model, pre.pattern, normalize, pre.addPrefixSpace);
  if (engine === 'bpe') return bpe();
  try {
    if (!pre.pattern) throw new NotTiktokenExpressible('byte-level pre-tokenizer without a split pattern');
    return new TiktokenEncoder(toTiktokenRanks(model, mergeList, false), pre.pattern, normalize, pre.addPrefixSpace);
  } catch (e) {
    if (!(e instanceof NotTiktokenExpressible) || engine === 'tiktoken') throw e;
    return bpe();
  }
}

/** Builds a Tokenizer from parsed tokenizer.json (and tokenizer_config / generation_config). */
export function tokenizerFromJson(j: Json, config: Json = {}, generation: Json = {}, engine: TokenizerEngine = 'auto'): Tokenizer {
  const m = j.model;
  if (!m || m.type !== 'BPE') throw new Error(`tokenizer model ${JSON.stringify(m?.type)} is not supported (only BPE)`);
  if (m.continuing_subword_prefix || m.end_of_word_suffix) throw new Error('BPE with subword prefixes or suffixes is not supported');
  const vocab = new Map<string, number>(Object.entries(m.vocab as Record<string, number>));
  const mergeList = parseMergeList(m.merges);
  const model: BpeModel = {
    vocab,
    merges: buildMerges(vocab, mergeList),
    unkId: m.unk_token != null ? (vocab.get(m.unk_token) ?? null) : null,
    fuseUnk: !!m.fuse_unk,
    byteFallback: !!m.byte_fallback,
    ignoreMerges: !!m.ignore_merges,
    cache: new Map(),
  };
  const added = parseAdded(j.added_tokens);
  let { prefix, suffix } = parsePostProcessor(j.post_processor);
  const lookup = (t: unknown): number | null => {
    const content = typeof t === 'string' ? t : (t as Json | null)?.content;
    if (typeof content !== 'string') return null;
    return vocab.get(content) ?? added.find((a) => a.content === content)?.id ?? null;
  };
  const eos = new Set<number>();
  const configEos = lookup(config.eos_token);
  if (configEos !== null) eos.add(configEos);
  for (const id of [generation.eos_token_id ?? []].flat()) if (Number.isInteger(id)) eos.add(id);
  const special = { bos: lookup(config.bos_token), eos: [...eos] };
  // As transformers' Llama tokenizers: explicit add_bos_token / add_eos_token rebuild the template.
  if (typeof config.add_bos_token === 'boolean' || typeof config.add_eos_token === 'boolean') {
    prefix = config.add_bos_token === true && special.bos !== null ? [special.bos] : config.add_bos_token === false ? [] : prefix;
    suffix = config.add_eos_token === true && configEos !== null ? [configEos] : config.add_eos_token === false ? [] : suffix;
  }
  const encoder = makeEncoder(j, model, mergeList, engine);
  const lengthFacts: LengthBoundFacts = { normalizerShrink: normalizerShrink(j.normalizer ?? null), unboundedUnk: unkIsUnbounded(model, encoder) };
  return new Tokenizer(vocab, added, new AddedTokenSplitter(added), encoder, parseDecoder(j.decoder), j.decoder ?? null, prefix, suffix, special, lengthFacts);
}

function readJson(path: string, required: boolean): Json {
  if (!existsSync(path)) {
    if (required) throw new Error(`${path} is missing`);
    return {};
  }
  const raw = path.endsWith('.gz') ? gunzipSync(readFileSync(path)).toString('utf8') : readFileSync(path, 'utf8');
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

/** Loads tokenizer.json (or tokenizer.json.gz), tokenizer_config.json and generation_config.json from a model directory. */
export function loadTokenizer(dir: string, engine: TokenizerEngine = 'auto'): Tokenizer {
  const gz = join(dir, 'tokenizer.json.gz');
  const j = readJson(existsSync(gz) ? gz : join(dir, 'tokenizer.json'), true);
  return tokenizerFromJson(j, readJson(join(dir, 'tokenizer_config.json'), false), readJson(join(dir, 'generation_config.json'), false), engine);
}

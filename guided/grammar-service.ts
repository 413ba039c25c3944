import type { CompiledGrammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';

import type { TokenGuide } from '../engine/types.js';
import { bytesToByteLevel } from '../tokenizers/byte-alphabet.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { withPlainPropertyNames } from './schema-keys.js';
import { GuideError, specKey, type GuideSpec } from './spec.js';
import { guideVocabOf, type GuideVocab } from './vocab.js';
import { createXGrammarEngine, type XGrammarBinding, type XGrammarEngine, type XGrammarModule } from './xgrammar.js';

export interface GrammarServiceOptions {
  /** Compiled grammars kept (least recently used dropped first). Each holds a token-mask cache of about the vocabulary's size per grammar position. */
  cacheSize?: number;
}

/** One compile and what it cost, for metrics and the bench. */
export interface CompileRecord {
  ms: number;
  cached: boolean;
}

/** JSON output is written on one line with a space after ',' and ':' and no other whitespace (no runs of blanks for a model to loop in). */
const JSON_INDENT_NONE = -1;

/**
 * Guided decoding for one model: compiles what requests ask for into
 * grammars (cached by spec, a compile shared by requests that ask for the
 * same spec at once) and hands each request a TokenGuide over its own matcher.
 *
 * Compiles run on the main thread (the WebAssembly engine has one thread), so
 * a new grammar stalls the event loop for its compile time; cached ones cost
 * only the matcher. A spec is first compiled against a 256-token byte
 * vocabulary in a separate, disposable engine, which finds every grammar and
 * schema error cheaply and takes the abort (guided/xgrammar.ts says why that
 * engine cannot be reused after one); only specs that pass reach the engine
 * whose matchers are serving.
 */
export class GrammarService {
  private readonly cache = new Map<string, CompiledGrammar>();
  private readonly compiling = new Map<string, Promise<CompiledGrammar>>();
  private checker: Promise<Checker> | undefined;
  /** The last compile of a spec not in the cache, and whether a request found its spec cached. */
  lastCompile: CompileRecord | undefined;

  private constructor(
    private readonly engine: XGrammarEngine,
    private readonly compiler: GrammarCompiler,
    readonly vocab: GuideVocab,
    private readonly cacheSize: number,
  ) {}

  static async create(tokenizer: Tokenizer, modelVocabSize: number, options: GrammarServiceOptions = {}): Promise<GrammarService> {
    const vocab = guideVocabOf(tokenizer, modelVocabSize);
    const engine = await createXGrammarEngine();
    const info = await engine.xg.TokenizerInfo.createTokenizerInfo(vocab.encoded, vocab.vocabType, vocab.prependSpace, vocab.vocabSize, vocab.stopIds);
    const compiler = await engine.xg.GrammarCompiler.createGrammarCompiler(info);
    return new GrammarService(engine, compiler, vocab, options.cacheSize ?? 64);
  }

  /** A fresh guide for one request; GuideError when the spec cannot be compiled. */
  async guide(spec: GuideSpec): Promise<TokenGuide> {
    const compiled = await this.compiled(spec);
    const matcher = await this.engine.xg.GrammarMatcher.createGrammarMatcher(compiled, this.vocab.stopIds);
    return new MatcherGuide(matcher, this.engine.binding, this.vocab.vocabSize);
  }

  /** Compiles (or finds) the grammar without making a matcher: a check that a spec is valid, and a warm-up. */
  async compiled(spec: GuideSpec): Promise<CompiledGrammar> {
    const key = specKey(spec);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      this.lastCompile = { ms: 0, cached: true };
      return hit;
    }
    let pending = this.compiling.get(key);
    if (!pending) {
      pending = this.compileNew(spec).finally(() => this.compiling.delete(key));
      this.compiling.set(key, pending);
    }
    const compiled = await pending;
    this.remember(key, compiled);
    return compiled;
  }

  private async compileNew(spec: GuideSpec): Promise<CompiledGrammar> {
    const t0 = performance.now();
    await this.check(spec);
    let compiled: CompiledGrammar;
    try {
      compiled = await compileIn(this.engine.xg, this.compiler, spec);
    } catch (e) {
      // The check passed, so this is the engine failing, not the spec; say so rather than blame the request.
      throw new Error(`the grammar engine failed on a spec it had accepted: ${this.engine.takeError() ?? (e as Error).message}`);
    }
    this.lastCompile = { ms: performance.now() - t0, cached: false };
    return compiled;
  }

  private async check(spec: GuideSpec): Promise<void> {
    this.checker ??= Checker.create();
    const checker = await this.checker;
    const reason = await checker.reject(spec);
    if (reason !== null) {
      this.checker = undefined;
      throw new GuideError(reason);
    }
  }

  private remember(key: string, compiled: CompiledGrammar): void {
    if (this.cache.has(key)) return;
    this.cache.set(key, compiled);
    while (this.cache.size > this.cacheSize) {
      const [oldest, grammar] = this.cache.entries().next().value as [string, CompiledGrammar];
      this.cache.delete(oldest);
      // Matchers made from it hold their own reference (the C++ object is shared), so this only drops the cache's.
      grammar.dispose();
    }
  }
}

/** Compiles specs against a small vocabulary to find the ones the engine refuses; thrown away after a refusal. */
class Checker {
  private constructor(
    private readonly engine: XGrammarEngine,
    private readonly compiler: GrammarCompiler,
  ) {}

  static async create(): Promise<Checker> {
    const engine = await createXGrammarEngine();
    const bytes = Array.from({ length: 256 }, (_, b) => bytesToByteLevel(Uint8Array.of(b)));
    const info = await engine.xg.TokenizerInfo.createTokenizerInfo(bytes, 'BYTE_LEVEL', false, 256, []);
    return new Checker(engine, await engine.xg.GrammarCompiler.createGrammarCompiler(info, false));
  }

  /** Null when the spec compiles; otherwise the engine's reason. */
  async reject(spec: GuideSpec): Promise<string | null> {
    try {
      (await compileIn(this.engine.xg, this.compiler, spec)).dispose();
      return null;
    } catch (e) {
      return this.engine.takeError() ?? (e instanceof Error ? e.message : String(e));
    }
  }
}

async function compileIn(xg: XGrammarModule, compiler: GrammarCompiler, spec: GuideSpec): Promise<CompiledGrammar> {
  switch (spec.kind) {
    case 'json_object':
      // Not the built-in JSON grammar: that takes any JSON value (an array, a number), and json_object promises an object.
      return compiler.compileJSONSchema('{"type":"object"}', false, JSON_INDENT_NONE, undefined, false);
    case 'json_schema': {
      const plain = withPlainPropertyNames(spec.schema);
      const ebnf = await xg.Testings._jsonSchemaToEBNF(JSON.stringify(plain.schema), false, JSON_INDENT_NONE, undefined, true);
      return compiler.compileGrammar(jsonStringsWithoutControlCharacters(plain.restore(ebnf)));
    }
    case 'regex':
      return compiler.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: spec.pattern } });
    case 'choice':
      return compiler.compileStructuralTag({ type: 'structural_tag', format: { type: 'or', elements: spec.choices.map((value) => ({ type: 'const_string', value })) } });
    case 'grammar':
      return compiler.compileGrammar(spec.ebnf);
  }
}

/**
 * xgrammar 0.1.27 writes strings with a length bound (maxLength, minLength)
 * as [^"\\\r\n]{m,n} (EBNF), which lets raw control characters through, and JSON
 * forbids them in strings (its unbounded strings exclude them). A model does
 * write a raw tab. The grammar text is compiled with those classes narrowed.
 */
export function jsonStringsWithoutControlCharacters(ebnf: string): string {
  return ebnf.split(String.raw`[^"\\\r\n]`).join(String.raw`[^\0-\x1f"\\]`);
}

/** A request's matcher: masks written straight from WebAssembly memory into the step's mask row. */
class MatcherGuide implements TokenGuide {
  private readonly handle: { GetNextTokenBitmask(vocabSize: number): import('./xgrammar.js').NativeIntVector };
  private disposed = false;

  constructor(
    private readonly matcher: GrammarMatcher,
    private readonly binding: XGrammarBinding,
    private readonly vocabSize: number,
  ) {
    this.handle = (matcher as unknown as { handle: MatcherGuide['handle'] }).handle;
  }

  fillNextTokenBitmask(row: Int32Array): void {
    const vec = this.handle.GetNextTokenBitmask(this.vocabSize);
    try {
      const mask = this.binding.vecIntToView(vec);
      if (mask.length !== row.length) throw new Error(`grammar mask has ${mask.length} words, the step's row ${row.length}`);
      row.set(mask);
    } finally {
      vec.delete();
    }
  }

  acceptToken(token: number): boolean {
    return this.matcher.acceptToken(token);
  }

  isTerminated(): boolean {
    return this.matcher.isTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
  }
}

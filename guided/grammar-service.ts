import type { CompiledGrammar, Grammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';

import type { TokenGuide } from '../engine/types.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { jsonSafeCharacterClasses } from './json-string-classes.js';
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
 * only the matcher. A spec is first turned into a grammar (parsed and
 * converted, not compiled) in a separate, disposable engine, which is where a
 * bad schema, regex or grammar aborts (guided/xgrammar.ts says why that engine
 * cannot be reused after one); only specs that pass reach the engine whose
 * matchers are serving. Should that engine still fail a compile, later
 * compiles go to a fresh one.
 */
export class GrammarService {
  private readonly cache = new Map<string, Compiled>();
  private readonly compiling = new Map<string, Promise<Compiled>>();
  private checker: Promise<XGrammarEngine> | undefined;
  private serving: Promise<Serving>;
  /** The last compile of a spec not in the cache, and whether a request found its spec cached. */
  lastCompile: CompileRecord | undefined;
  /** Guides handed out and not yet disposed (each holds a matcher in WebAssembly memory). */
  liveGuides = 0;

  private constructor(
    serving: Serving,
    readonly vocab: GuideVocab,
    private readonly cacheSize: number,
  ) {
    this.serving = Promise.resolve(serving);
  }

  static async create(tokenizer: Tokenizer, modelVocabSize: number, options: GrammarServiceOptions = {}): Promise<GrammarService> {
    const vocab = guideVocabOf(tokenizer, modelVocabSize);
    return new GrammarService(await Serving.create(vocab), vocab, options.cacheSize ?? 64);
  }

  /**
   * Runs one small spec through the whole path (the checking engine, a
   * compile, a matcher), so the first request's compile does not also pay for
   * creating the checking engine and for WebAssembly's first, slower tier:
   * about 200 ms there on the first schema, 30 to 50 ms after.
   */
  async warmUp(): Promise<void> {
    const spec: GuideSpec = { kind: 'json_schema', schema: { type: 'object', properties: { warm: { type: 'integer' }, up: { type: 'string' } } } };
    (await this.guide(spec)).dispose();
    this.cache.get(specKey(spec))?.grammar.dispose();
    this.cache.delete(specKey(spec));
  }

  /** A fresh guide for one request; GuideError when the spec cannot be compiled. */
  async guide(spec: GuideSpec): Promise<TokenGuide> {
    // The matcher is made by the engine that compiled the grammar (a grammar from one engine means nothing to another).
    const { grammar, engine } = await this.compiled(spec);
    const matcher = await engine.xg.GrammarMatcher.createGrammarMatcher(grammar, this.vocab.stopIds);
    this.liveGuides++;
    return new MatcherGuide(matcher, engine.binding, this.vocab.vocabSize, () => this.liveGuides--);
  }

  /** Compiles (or finds) the grammar without making a matcher: a check that a spec is valid, and a warm-up. */
  async compiled(spec: GuideSpec): Promise<Compiled> {
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

  private async compileNew(spec: GuideSpec): Promise<Compiled> {
    const t0 = performance.now();
    await this.check(spec);
    const serving = await this.serving;
    let grammar: CompiledGrammar;
    try {
      const parsed = await grammarOf(serving.engine.xg, spec);
      grammar = await serving.compiler.compileGrammar(parsed);
      parsed.dispose();
    } catch (e) {
      // The check passed, so this is the engine failing, not the spec: later compiles go to a fresh engine, and the
      // request is not blamed. Grammars and matchers made here go on in this one; its cached grammars are dropped
      // undisposed (a guide() may be about to use one), once per engine failure.
      const reason = serving.engine.takeError() ?? (e as Error).message;
      if ((await this.serving) === serving) {
        const fresh = Serving.create(this.vocab);
        // Nobody may be waiting for it yet: a failure must not be an unhandled rejection.
        fresh.catch(() => undefined);
        this.serving = fresh;
        this.cache.clear();
      }
      throw new Error(`the grammar engine failed on a spec it had accepted: ${reason}`);
    }
    this.lastCompile = { ms: performance.now() - t0, cached: false };
    return { grammar, engine: serving.engine };
  }

  /** GuideError when the spec cannot be made into a grammar; the engine that found out is thrown away. */
  private async check(spec: GuideSpec): Promise<void> {
    this.checker ??= createXGrammarEngine();
    const checker = await this.checker;
    try {
      (await grammarOf(checker.xg, spec)).dispose();
    } catch (e) {
      this.checker = undefined;
      throw new GuideError(checker.takeError() ?? (e instanceof Error ? e.message : String(e)));
    }
  }

  private remember(key: string, compiled: Compiled): void {
    if (this.cache.has(key)) return;
    this.cache.set(key, compiled);
    while (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value as string;
      const { grammar } = this.cache.get(oldest)!;
      this.cache.delete(oldest);
      // Matchers hold their own reference to the C++ grammar, so disposing drops only the cache's. Deferred a
      // turn: a guide() that found it cached just before makes its matcher within this one.
      setImmediate(() => grammar.dispose());
    }
  }
}

/** A compiled grammar and the engine it lives in. */
export interface Compiled {
  grammar: CompiledGrammar;
  engine: XGrammarEngine;
}

/** The engine whose compiled grammars and matchers serve requests, with the vocabulary loaded. */
class Serving {
  private constructor(
    readonly engine: XGrammarEngine,
    readonly compiler: GrammarCompiler,
  ) {}

  static async create(vocab: GuideVocab): Promise<Serving> {
    const engine = await createXGrammarEngine();
    const info = await engine.xg.TokenizerInfo.createTokenizerInfo(vocab.encoded, vocab.vocabType, vocab.prependSpace, vocab.vocabSize, vocab.stopIds);
    return new Serving(engine, await engine.xg.GrammarCompiler.createGrammarCompiler(info));
  }
}

/** The spec as a grammar: parsed and converted, not yet compiled against a vocabulary. */
async function grammarOf(xg: XGrammarModule, spec: GuideSpec): Promise<Grammar> {
  switch (spec.kind) {
    case 'json_object':
      // Not the built-in JSON grammar: that takes any JSON value (an array, a number), and json_object promises an object.
      return xg.Grammar.fromJSONSchema('{"type":"object"}', false, JSON_INDENT_NONE, undefined, false);
    case 'json_schema': {
      const plain = withPlainPropertyNames(spec.schema);
      const ebnf = await xg.Testings._jsonSchemaToEBNF(JSON.stringify(plain.schema), false, JSON_INDENT_NONE, undefined, true);
      return xg.Grammar.fromEBNF(jsonSafeCharacterClasses(plain.restore(ebnf)));
    }
    case 'regex':
      return xg.Grammar.fromStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: spec.pattern } });
    case 'choice':
      return xg.Grammar.fromStructuralTag({ type: 'structural_tag', format: { type: 'or', elements: spec.choices.map((value) => ({ type: 'const_string', value })) } });
    case 'grammar':
      return xg.Grammar.fromEBNF(spec.ebnf);
  }
}

/** A request's matcher: masks written straight from WebAssembly memory into the step's mask row. */
class MatcherGuide implements TokenGuide {
  private readonly handle: { GetNextTokenBitmask(vocabSize: number): import('./xgrammar.js').NativeIntVector };
  private disposed = false;
  /** The token advance() recorded, not yet taken by the matcher; -1 = none. */
  private pending = -1;
  private refused = false;

  constructor(
    private readonly matcher: GrammarMatcher,
    private readonly binding: XGrammarBinding,
    private readonly vocabSize: number,
    private readonly onDispose: () => void,
  ) {
    this.handle = (matcher as unknown as { handle: MatcherGuide['handle'] }).handle;
  }

  fillNextTokenBitmask(row: Int32Array): boolean {
    if (!this.takePending()) return false;
    const vec = this.handle.GetNextTokenBitmask(this.vocabSize);
    try {
      const mask = this.binding.vecIntToView(vec);
      if (mask.length !== row.length) throw new Error(`grammar mask has ${mask.length} words, the step's row ${row.length}`);
      row.set(mask);
    } finally {
      vec.delete();
    }
    return true;
  }

  advance(token: number): void {
    // Two tokens without a fill between (not a path the engine takes): the first is taken now.
    if (this.pending >= 0) this.refused ||= !this.matcher.acceptToken(this.pending);
    this.pending = token;
  }

  private takePending(): boolean {
    if (this.pending >= 0) this.refused ||= !this.matcher.acceptToken(this.pending);
    this.pending = -1;
    return !this.refused;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
    this.onDispose();
  }
}

import type { ResolvedConfig } from '../config/schema.js';
import type { Engine } from '../engine/engine.js';
import { GrammarService } from '../guided/grammar-service.js';
import { ResponseStore } from './responses/store.js';
import type { ChatTemplate } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { TokenizerService } from '../tokenizers/tokenizer-service.js';
import type { LoadedModel } from './load-model.js';
import { Metrics } from './metrics.js';

/** Everything the HTTP layer uses; built once by main.ts (or a test). */
export interface ServerDeps {
  config: ResolvedConfig;
  modelName: string;
  maxModelLen: number;
  engine: Engine;
  tokenizers: TokenizerService;
  chatTemplate: ChatTemplate | null;
  /** For requests with tools ("tool_use" where tokenizer_config names one); absent: chatTemplate. */
  toolChatTemplate?: ChatTemplate | null;
  metrics: Metrics;
  /** inFlight: generation requests admitted and not yet answered (the drain waits for them). */
  state: { ready: boolean; draining: boolean; inFlight: number };
  /** Unix seconds the model was loaded. */
  created: number;
  /** Guided decoding's grammars for this model, made on first use (main.ts starts that once the server is up). */
  grammars: () => Promise<GrammarService>;
  /** The Responses API's stored responses. */
  responses: ResponseStore;
}

/** The HTTP layer's view of a loaded model, not yet ready (the server flips state.ready once it serves). */
export function depsOf(model: LoadedModel, modelName: string, responses?: ResponseStore): ServerDeps {
  return {
    config: model.config,
    modelName,
    maxModelLen: model.maxModelLen,
    engine: model.engine,
    tokenizers: model.tokenizers,
    chatTemplate: model.chatTemplate,
    toolChatTemplate: model.toolChatTemplate,
    metrics: new Metrics(model.engine),
    state: { ready: false, draining: false, inFlight: 0 },
    created: Math.floor(Date.now() / 1000),
    grammars: lazyGrammars(model.tokenizers.tokenizer, model.engine),
    responses: responses ?? responseStoreOf(model.config),
  };
}

/** ServerDeps.grammars: the first call's promise, kept; a failure (a tokenizer guided decoding cannot use) is the answer every time. */
export function lazyGrammars(tokenizer: Tokenizer, engine: Engine): () => Promise<GrammarService> {
  let made: Promise<GrammarService> | undefined;
  return () => (made ??= GrammarService.create(tokenizer, engine.vocabSize));
}

export function responseStoreOf(config: ResolvedConfig): ResponseStore {
  return new ResponseStore({ path: config.responsesStorePath, maxCount: config.responsesStoreMaxCount, maxAgeSeconds: config.responsesStoreMaxAge });
}

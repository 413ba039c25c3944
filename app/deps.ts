import type { ResolvedConfig } from '../config/schema.js';
import type { Engine } from '../engine/engine.js';
import type { ChatTemplate } from '../tokenizers/chat-template.js';
import type { TokenizerService } from '../tokenizers/tokenizer-service.js';
import type { Metrics } from './metrics.js';

/** Everything the HTTP layer uses; built once by main.ts (or a test). */
export interface ServerDeps {
  config: ResolvedConfig;
  modelName: string;
  maxModelLen: number;
  engine: Engine;
  tokenizers: TokenizerService;
  chatTemplate: ChatTemplate | null;
  metrics: Metrics;
  state: { ready: boolean; draining: boolean };
  /** Unix seconds the model was loaded. */
  created: number;
}

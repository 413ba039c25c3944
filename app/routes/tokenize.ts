import type { Context } from 'hono';

import { parseBody, readJson } from '../body.js';
import type { ServerDeps } from '../deps.js';
import { badRequest } from '../errors.js';
import { chatPromptTokens } from '../prompts.js';
import { DetokenizeRequest, TokenizeRequest } from '../schemas.js';
import { checkModel } from './common.js';

/** POST /tokenize, shaped as vLLM's: {prompt} or {messages} -> {tokens, count, max_model_len}. */
export function tokenize(deps: ServerDeps) {
  return async function tokenizeHandler(c: Context) {
    const body = parseBody(TokenizeRequest, await readJson(c));
    checkModel(deps, body.model);
    const tokens =
      'prompt' in body
        ? await deps.tokenizers.encode(body.prompt, { addSpecialTokens: body.add_special_tokens ?? true })
        : await chatPromptTokens(deps, body.messages, body.add_generation_prompt ?? true, body.tools);
    return c.json({ tokens, count: tokens.length, max_model_len: deps.maxModelLen });
  };
}

/** POST /detokenize: {tokens} -> {prompt}. */
export function detokenize(deps: ServerDeps) {
  return async function detokenizeHandler(c: Context) {
    const body = parseBody(DetokenizeRequest, await readJson(c));
    checkModel(deps, body.model);
    const tok = deps.tokenizers.tokenizer;
    body.tokens.forEach((t, i) => {
      if (t < 0 || t >= tok.vocabSize || tok.idToTokenString(t) === undefined) throw badRequest(`token id ${t} is not in the vocabulary`, `tokens[${i}]`);
    });
    return c.json({ prompt: tok.decode(body.tokens) });
  };
}

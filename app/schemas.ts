import { z } from 'zod';

import { guidedFields } from './guided-request.js';
import { samplingFields } from './sampling-params.js';

/**
 * Request bodies, as OpenAI defines them. Parameters this server cannot
 * honour are accepted only at their no-op values; anything else is a 400 that
 * names them (unsupported() below), never silently ignored.
 */
const unsupported = (why: string) =>
  z
    .any()
    .refine((v) => v === undefined || v === null || v === 0 || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0), {
      message: `is not supported by this server (${why})`,
    })
    .optional();

/**
 * Parameters clients send that change nothing this server does; accepted and
 * ignored (README lists them). store: true would promise a stored completion,
 * so only false is accepted.
 */
const ignored = {
  user: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  service_tier: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
  safety_identifier: z.string().nullish(),
  store: z.literal(false, { error: 'store: true is not supported (this server keeps no completions); send false or leave it out' }).nullish(),
};

const sampling = {
  model: z.string(),
  max_tokens: z.number().int().min(1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).strict().nullish(),
  ...samplingFields,
  ...guidedFields,
  ...ignored,
};

/** Only text parts: an image or audio part fails on its type, named in the error. */
const textPart = z.object({ type: z.literal('text'), text: z.string() }).strict();

const content = z.union([z.string(), z.array(textPart)]);

/** An assistant's earlier call; arguments is the JSON text the model produced. */
const toolCall = z
  .object({ id: z.string(), type: z.literal('function'), function: z.object({ name: z.string(), arguments: z.string() }).strict() })
  .strict();

/** Messages by role: assistants may carry tool_calls (content then null or absent); tool messages answer one by id. */
const message = z.discriminatedUnion('role', [
  z.object({ role: z.enum(['system', 'developer', 'user']), content: content.nullable(), name: z.string().nullish() }).strict(),
  z
    .object({ role: z.literal('assistant'), content: content.nullish(), name: z.string().nullish(), tool_calls: z.array(toolCall).nullish(), refusal: z.string().nullish() })
    .strict(),
  z.object({ role: z.literal('tool'), content, tool_call_id: z.string(), name: z.string().nullish() }).strict(),
]);

/** A function the model may call; parameters is a JSON schema (strict is accepted: nothing checks arguments against it yet). */
const tool = z
  .object({
    type: z.literal('function'),
    function: z
      .object({ name: z.string().min(1), description: z.string().nullish(), parameters: z.record(z.string(), z.unknown()).nullish(), strict: z.boolean().nullish() })
      .strict(),
  })
  .strict();

const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string() }).strict() }).strict(),
]);

export const ChatRequest = z
  .object({
    ...sampling,
    messages: z.array(message).min(1, 'must hold at least one message'),
    max_completion_tokens: z.number().int().min(1).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    tools: z.array(tool).nullish(),
    // 'required' and a named function guide the output to a call (app/tool-calls/forced.ts).
    tool_choice: toolChoice.nullish(),
    // false limits a forced call ('required') to one; with 'auto' the parsers return every call the model makes.
    parallel_tool_calls: z.boolean().nullish(),
    functions: unsupported('function calling is not implemented'),
    function_call: unsupported('function calling is not implemented'),
    add_generation_prompt: z.boolean().nullish(),
  })
  .strict();

export const CompletionRequest = z
  .object({
    ...sampling,
    prompt: z.union([
      z.string(),
      z.array(z.string()).min(1),
      z.array(z.number().int().min(0)).min(1),
      z.array(z.array(z.number().int().min(0)).min(1)).min(1),
    ]),
    logprobs: z.number().int().min(0).max(20).nullish(),
    echo: unsupported('echo is not implemented'),
    best_of: z.literal(1).nullish(),
    suffix: unsupported('suffix is not implemented'),
  })
  .strict();

export const TokenizeRequest = z.union([
  z.object({ model: z.string().nullish(), prompt: z.string(), add_special_tokens: z.boolean().nullish() }).strict(),
  z
    .object({ model: z.string().nullish(), messages: z.array(message).min(1), tools: z.array(tool).nullish(), add_generation_prompt: z.boolean().nullish(), add_special_tokens: z.boolean().nullish() })
    .strict(),
]);

export const DetokenizeRequest = z.object({ model: z.string().nullish(), tokens: z.array(z.number().int()) }).strict();

export type ChatRequest = z.infer<typeof ChatRequest>;
export type CompletionRequest = z.infer<typeof CompletionRequest>;
export type ChatMessageIn = z.infer<typeof message>;
export type ToolIn = z.infer<typeof tool>;

import { z } from 'zod';

/**
 * Anthropic's Messages API request (POST /v1/messages), the fields this
 * server honours. Beta features (thinking, MCP servers, server tools,
 * citations, images, documents) are a 400 naming them.
 */
const cacheControl = z.object({ type: z.literal('ephemeral'), ttl: z.string().nullish() }).strict().nullish();

const textBlock = z.object({ type: z.literal('text'), text: z.string(), cache_control: cacheControl, citations: z.null().optional() }).strict();

const toolUseBlock = z
  .object({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.record(z.string(), z.unknown()), cache_control: cacheControl })
  .strict();

const toolResultBlock = z
  .object({
    type: z.literal('tool_result'),
    tool_use_id: z.string().min(1),
    content: z.union([z.string(), z.array(textBlock)]).nullish(),
    is_error: z.boolean().nullish(),
    cache_control: cacheControl,
  })
  .strict();

const block = z.discriminatedUnion('type', [textBlock, toolUseBlock, toolResultBlock]);

export const AnthropicMessage = z
  .object({
    role: z.enum(['user', 'assistant']),
    content: z.union([z.string(), z.array(block)]),
  })
  .strict();

const tool = z
  .object({
    name: z.string().min(1).max(128),
    description: z.string().nullish(),
    input_schema: z.object({ type: z.literal('object') }).passthrough(),
    cache_control: cacheControl,
    type: z.literal('custom').nullish(),
  })
  .strict();

const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().nullish() }).strict(),
  z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().nullish() }).strict(),
  z.object({ type: z.literal('tool'), name: z.string().min(1), disable_parallel_tool_use: z.boolean().nullish() }).strict(),
  z.object({ type: z.literal('none') }).strict(),
]);

const prompt = {
  model: z.string(),
  system: z.union([z.string(), z.array(textBlock)]).nullish(),
  messages: z.array(AnthropicMessage).min(1, 'must hold at least one message'),
  tools: z.array(tool).nullish(),
  tool_choice: toolChoice.nullish(),
};

export const MessagesRequest = z
  .object({
    ...prompt,
    max_tokens: z.number({ error: 'Field required' }).int().min(1),
    stop_sequences: z.array(z.string().min(1)).max(16).nullish(),
    // Anthropic's range.
    temperature: z.number().min(0).max(1).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.number().int().min(0).nullish(),
    stream: z.boolean().nullish(),
    metadata: z.object({ user_id: z.string().nullish() }).strict().nullish(),
    // Accepted and ignored: prefix caching is automatic here, and there is one tier, one speed, one place.
    service_tier: z.enum(['auto', 'standard_only']).nullish(),
    cache_control: cacheControl,
    speed: z.enum(['standard', 'fast']).nullish(),
    inference_geo: z.string().nullish(),
    // Extended thinking is not served; only its off switch is accepted.
    thinking: z.object({ type: z.literal('disabled') }).strict().nullish(),
  })
  .strict();

export const CountTokensRequest = z.object(prompt).strict();

export type MessagesRequest = z.infer<typeof MessagesRequest>;
export type CountTokensRequest = z.infer<typeof CountTokensRequest>;

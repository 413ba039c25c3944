import { z } from 'zod';

/**
 * The OpenAI Responses API request (POST /v1/responses), the fields this
 * server honours; built-in tools, reasoning, background runs and prompt
 * templates are a 400 naming them.
 */
const inputText = z.object({ type: z.literal('input_text'), text: z.string() }).strict();
const outputText = z
  .object({ type: z.literal('output_text'), text: z.string(), annotations: z.array(z.unknown()).nullish(), logprobs: z.array(z.unknown()).nullish() })
  .strict();

const messageItem = z
  .object({
    type: z.literal('message').optional(),
    id: z.string().nullish(),
    status: z.string().nullish(),
    role: z.enum(['user', 'system', 'developer', 'assistant']),
    content: z.union([z.string(), z.array(z.discriminatedUnion('type', [inputText, outputText]))]),
  })
  .strict();

const functionCallItem = z
  .object({ type: z.literal('function_call'), id: z.string().nullish(), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string(), status: z.string().nullish() })
  .strict();

const functionCallOutputItem = z
  .object({ type: z.literal('function_call_output'), id: z.string().nullish(), call_id: z.string().min(1), output: z.union([z.string(), z.array(inputText)]), status: z.string().nullish() })
  .strict();

/** An item without a type is a message (OpenAI's "easy input message"); the rest are told apart by type, so errors name the right fields. */
export const InputItem = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('type' in v) ? { ...v, type: 'message' } : v),
  z.discriminatedUnion('type', [messageItem.extend({ type: z.literal('message') }), functionCallItem, functionCallOutputItem]),
);

const functionTool = z
  .object({
    type: z.literal('function'),
    name: z.string().min(1),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  })
  .strict();

const toolChoice = z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) }).strict()]);

const format = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z
    .object({
      type: z.literal('json_schema'),
      name: z.string().nullish(),
      description: z.string().nullish(),
      schema: z.union([z.record(z.string(), z.unknown()), z.boolean()]),
      strict: z.boolean().nullish(),
    })
    .strict(),
]);

export const ResponsesRequest = z
  .object({
    model: z.string(),
    input: z.union([z.string(), z.array(InputItem)]),
    instructions: z.string().nullish(),
    max_output_tokens: z.number().int().min(1).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    text: z.object({ format: format.nullish(), verbosity: z.enum(['low', 'medium', 'high']).nullish() }).strict().nullish(),
    tools: z.array(functionTool).nullish(),
    tool_choice: toolChoice.nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    previous_response_id: z.string().min(1).nullish(),
    store: z.boolean().nullish(),
    stream: z.boolean().nullish(),
    metadata: z.record(z.string(), z.string()).nullish(),
    user: z.string().nullish(),
    // Accepted: no truncation happens (a conversation that does not fit is a 400, as 'disabled' says).
    truncation: z.literal('disabled').nullish(),
    // Accepted and ignored, as on chat completions.
    service_tier: z.string().nullish(),
    prompt_cache_key: z.string().nullish(),
    safety_identifier: z.string().nullish(),
    stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).strict().nullish(),
    include: z.array(z.string()).max(0, 'nothing can be included: this server has no built-in tools, reasoning or logprobs in responses').nullish(),
    reasoning: z.null().optional(),
  })
  .strict();

export type ResponsesRequest = z.infer<typeof ResponsesRequest>;
export type InputItem = z.output<typeof InputItem>;

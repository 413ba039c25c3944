import { ChatTemplateError, type ChatMessage } from '../tokenizers/chat-template.js';
import type { EncodeOptions } from '../tokenizers/tokenizer.js';
import type { ServerDeps } from './deps.js';
import { badRequest } from './errors.js';
import type { ChatMessageIn, ToolIn } from './schemas.js';

/** Message content as text: a string, or text parts joined. */
export function messageText(m: ChatMessageIn): string {
  if (m.content == null) return '';
  return typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('');
}

/**
 * A message as transformers hands it to a template: content as text (null
 * becomes ''), an assistant's tool_calls with arguments parsed into an object
 * (the real templates print them with |tojson and expect a dict; text that is
 * not JSON stays text), a tool message's tool_call_id. Keys a message lacks
 * stay absent: templates test `'tool_calls' in message` and `is defined`.
 */
export function templateMessage(m: ChatMessageIn): ChatMessage {
  const out: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content: messageText(m) };
  if (m.role === 'assistant' && m.tool_calls?.length)
    out.tool_calls = m.tool_calls.map((c) => ({ id: c.id, type: c.type, function: { name: c.function.name, arguments: argumentsValue(c.function.arguments) } }));
  if (m.role === 'tool') {
    out.tool_call_id = m.tool_call_id;
    if (m.name) out.name = m.name;
  }
  return out;
}

function argumentsValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Tools as templates read them: {type, function: {name, description?, parameters?}}, unset fields absent. */
export function templateTools(tools: ToolIn[] | null | undefined): unknown[] | null {
  if (!tools?.length) return null;
  return tools.map(({ type, function: f }) => ({
    type,
    function: { name: f.name, ...(f.description != null && { description: f.description }), ...(f.parameters != null && { parameters: f.parameters }) },
  }));
}

/** The template for a request: the "tool_use" one when tools are given and the model names one (transformers' rule). */
export function templateFor(deps: ServerDeps, tools: ToolIn[] | null | undefined) {
  return tools?.length ? (deps.toolChatTemplate ?? deps.chatTemplate) : deps.chatTemplate;
}

/**
 * Renders the chat template and tokenizes it. The template's control tokens
 * are parsed; each message's own text is passed as a literal range, so
 * special-token text a user typed stays text.
 */
export async function chatPromptTokens(deps: ServerDeps, messages: ChatMessageIn[], addGenerationPrompt: boolean, tools: ToolIn[] | null = null, param = 'messages'): Promise<number[]> {
  const template = templateFor(deps, tools);
  if (!template) throw badRequest('this model has no chat template; use /v1/completions', param, 'no_chat_template');
  const tok = deps.tokenizers.tokenizer;
  const plain = messages.map(templateMessage);
  let rendered: string;
  try {
    rendered = template.render({
      messages: plain,
      tools: templateTools(tools),
      addGenerationPrompt,
      bosToken: tok.special.bos === null ? '' : tok.idToTokenString(tok.special.bos),
      eosToken: tok.special.eos.length ? tok.idToTokenString(tok.special.eos[0]) : '',
    });
  } catch (e) {
    if (e instanceof ChatTemplateError) throw badRequest(`the chat template refused the conversation: ${e.message}`, param, 'chat_template_error');
    throw e;
  }
  // Checked before the content ranges are searched for: that search alone is milliseconds on a multi-megabyte prompt.
  refuseIfCannotFit(deps, rendered, { parseSpecialTokens: true }, param);
  return deps.tokenizers.encode(rendered, { parseSpecialTokens: true, literalRanges: contentRanges(rendered, plain.map((m) => m.content as string)) });
}

/**
 * 400 context_length_exceeded, before any tokenizing, when the fewest tokens
 * the text can encode to (Tokenizer.minTokens, from its length in bytes)
 * already fill the context: a multi-megabyte prompt is refused after a byte
 * count at most, instead of after seconds on a tokenizer worker (five 3.9 MB
 * prompts had a 1024-token model's one worker busy for 3.6 s). Texts under
 * the bound are tokenized and checked exactly by resolveMaxTokens.
 */
function refuseIfCannotFit(deps: ServerDeps, text: string, options: EncodeOptions, param: string): void {
  const atLeast = deps.tokenizers.tokenizer.minTokens(text, options, deps.maxModelLen);
  if (atLeast < deps.maxModelLen) return;
  const what = param === 'messages' ? 'messages' : 'prompt';
  throw badRequest(
    `This model's maximum context length is ${deps.maxModelLen} tokens. However, your ${what} resulted in at least ${atLeast} tokens. ` +
      `Please reduce the length of the ${what}.`,
    param,
    'context_length_exceeded',
  );
}

/** Where each message's content sits in the rendered prompt, searched in order. */
function contentRanges(rendered: string, contents: string[]): [number, number][] {
  const ranges: [number, number][] = [];
  let from = 0;
  for (const c of contents) {
    if (c.length === 0) continue;
    const at = rendered.indexOf(c, from);
    if (at < 0) continue;
    ranges.push([at, at + c.length]);
    from = at + c.length;
  }
  return ranges;
}

/** A completions prompt: text (special-token text stays text) or token ids; one entry per prompt. */
export async function completionPromptTokens(deps: ServerDeps, prompt: string | string[] | number[] | number[][]): Promise<number[][]> {
  const checkIds = (ids: number[], param: string) => {
    for (const id of ids) checkTokenId(deps, id, param);
    return ids;
  };
  const options: EncodeOptions = { addSpecialTokens: true };
  if (typeof prompt === 'string') {
    refuseIfCannotFit(deps, prompt, options, 'prompt');
    return [await deps.tokenizers.encode(prompt, options)];
  }
  if (prompt.every((p) => typeof p === 'number')) return [checkIds(prompt as number[], 'prompt')];
  if (prompt.every((p) => Array.isArray(p))) return (prompt as number[][]).map((ids, i) => checkIds(ids, `prompt[${i}]`));
  // Every string is checked before any is tokenized. The param names the entry as the exact check does.
  const texts = prompt as string[];
  texts.forEach((p, i) => refuseIfCannotFit(deps, p, options, texts.length > 1 ? `prompt[${i}]` : 'prompt'));
  return Promise.all(texts.map((p) => deps.tokenizers.encode(p, options)));
}

/** 400 naming param when a token id a request gives (ids are already non-negative integers) is outside the vocabulary; shown: the id as the client wrote it. */
export function checkTokenId(deps: ServerDeps, id: number, param: string, shown: string | number = id): void {
  const vocab = deps.tokenizers.tokenizer.vocabSize;
  if (id >= vocab) throw badRequest(`token id ${shown} is outside the vocabulary of ${vocab}`, param);
}

/** max_tokens, defaulting to what the context leaves; 400 with both numbers when the request cannot fit. */
export function resolveMaxTokens(deps: ServerDeps, promptLength: number, requested: number | null | undefined, param: string): number {
  const limit = deps.maxModelLen;
  if (promptLength === 0) throw badRequest('the prompt is empty', param);
  const max = requested ?? limit - promptLength;
  if (promptLength + max > limit || max < 1)
    throw badRequest(
      `This model's maximum context length is ${limit} tokens. However, you requested ${promptLength + Math.max(max, 1)} tokens ` +
        `(${promptLength} in the ${param === 'messages' ? 'messages' : 'prompt'}, ${Math.max(max, 1)} in the completion). ` +
        'Please reduce the length of the prompt or completion.',
      param,
      'context_length_exceeded',
    );
  return max;
}

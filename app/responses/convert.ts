import { randomUUID } from 'node:crypto';

import type { ChatMessageIn, ChatRequest, ToolIn } from '../schemas.js';
import type { InputItem, ResponsesRequest } from './schema.js';

/** OpenAI's shape of the Responses API's ids: a prefix and 48 hex digits. */
export const itemId = (prefix: string) => `${prefix}_${randomUUID().replace(/-/g, '')}${randomUUID().replace(/-/g, '').slice(0, 16)}`;

export type Item = Record<string, unknown>;

/** Input items as the API returns them (input_items, stored context): every item typed, with an id, its text as parts. */
export function normalizeInput(input: ResponsesRequest['input']): Item[] {
  const items: InputItem[] = typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : input;
  return items.map((x): Item => {
    if (x.type === 'function_call') return { type: 'function_call', id: x.id ?? itemId('fc'), call_id: x.call_id, name: x.name, arguments: x.arguments, status: 'completed' };
    if (x.type === 'function_call_output') {
      const output = typeof x.output === 'string' ? x.output : x.output.map((p) => p.text).join('');
      return { type: 'function_call_output', id: x.id ?? itemId('fco'), call_id: x.call_id, output, status: 'completed' };
    }
    const partType = x.role === 'assistant' ? 'output_text' : 'input_text';
    const content = typeof x.content === 'string' ? [{ type: partType, text: x.content }] : x.content.map((p) => ({ type: p.type, text: p.text }));
    return { type: 'message', id: x.id ?? itemId('msg'), role: x.role, status: 'completed', content };
  });
}

/**
 * The conversation as chat messages for the chat template: instructions
 * first (not inherited from a previous response, as OpenAI does), then the
 * items in order; function_call items join the assistant message before them
 * as tool_calls, function_call_output items become tool messages.
 */
export function chatMessagesOf(instructions: string | null | undefined, items: Item[]): ChatMessageIn[] {
  const out: ChatMessageIn[] = [];
  if (instructions) out.push({ role: 'system', content: instructions });
  for (const x of items) {
    if (x.type === 'function_call') {
      const call = { id: String(x.call_id), type: 'function' as const, function: { name: String(x.name), arguments: String(x.arguments) } };
      const last = out.at(-1);
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (x.type === 'function_call_output') out.push({ role: 'tool', tool_call_id: String(x.call_id), content: String(x.output) });
    else if (x.type === 'message') {
      const text = (x.content as { text: string }[]).map((p) => p.text).join('');
      const role = x.role as 'user' | 'system' | 'developer' | 'assistant';
      out.push(role === 'assistant' ? { role, content: text } : { role, content: text });
    }
  }
  return out;
}

/** The Responses API's flat function tools and tool_choice, as chat completions spells them. */
export function chatToolsOf(b: Pick<ResponsesRequest, 'tools' | 'tool_choice'>): { tools: ToolIn[] | null; toolChoice: ChatRequest['tool_choice'] } {
  const tools: ToolIn[] | null = b.tools?.length
    ? b.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters ?? undefined, strict: t.strict } }))
    : null;
  const c = b.tool_choice;
  return { tools, toolChoice: c == null ? undefined : typeof c === 'string' ? c : { type: 'function', function: { name: c.name } } };
}

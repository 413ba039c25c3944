import { badRequest } from '../errors.js';
import type { ChatMessageIn, ChatRequest, ToolIn } from '../schemas.js';
import type { CountTokensRequest } from './schema.js';

/**
 * An Anthropic conversation as the chat messages and tools the chat template
 * renders, so both APIs build prompts (and read tool calls) the same way:
 * system -> a system message; a user's tool_result blocks -> tool messages
 * (in order, before the user's text); an assistant's tool_use blocks -> its
 * tool_calls, with the input as JSON arguments.
 */
export function chatOf(b: CountTokensRequest): { messages: ChatMessageIn[]; tools: ToolIn[] | null; toolChoice: ChatRequest['tool_choice']; parallel: boolean } {
  const messages: ChatMessageIn[] = [];
  const system = typeof b.system === 'string' ? b.system : (b.system ?? []).map((t) => t.text).join('\n');
  if (system.length > 0) messages.push({ role: 'system', content: system });
  b.messages.forEach((m, i) => {
    const blocks = typeof m.content === 'string' ? [{ type: 'text' as const, text: m.content }] : m.content;
    const text = blocks.flatMap((x) => (x.type === 'text' ? [x.text] : [])).join('');
    if (m.role === 'user') {
      for (const [j, x] of blocks.entries()) {
        if (x.type === 'tool_use') throw badRequest(`messages[${i}].content[${j}]: tool_use blocks belong to assistant messages`, `messages[${i}].content[${j}].type`);
        if (x.type !== 'tool_result') continue;
        const content = typeof x.content === 'string' ? x.content : (x.content ?? []).map((t) => t.text).join('');
        messages.push({ role: 'tool', tool_call_id: x.tool_use_id, content: x.is_error ? `Error: ${content}` : content });
      }
      if (text.length > 0 || !blocks.some((x) => x.type === 'tool_result')) messages.push({ role: 'user', content: text });
      return;
    }
    blocks.forEach((x, j) => {
      if (x.type === 'tool_result') throw badRequest(`messages[${i}].content[${j}]: tool_result blocks belong to user messages`, `messages[${i}].content[${j}].type`);
    });
    const calls = blocks.flatMap((x) => (x.type === 'tool_use' ? [{ id: x.id, type: 'function' as const, function: { name: x.name, arguments: JSON.stringify(x.input) } }] : []));
    messages.push({ role: 'assistant', content: calls.length && !text ? null : text, ...(calls.length ? { tool_calls: calls } : {}) });
  });
  const tools: ToolIn[] | null = b.tools?.length
    ? b.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.input_schema as Record<string, unknown> } }))
    : null;
  const c = b.tool_choice;
  const toolChoice: ChatRequest['tool_choice'] =
    c == null ? undefined : c.type === 'any' ? 'required' : c.type === 'tool' ? { type: 'function', function: { name: c.name } } : c.type;
  const parallel = !(c && 'disable_parallel_tool_use' in c && c.disable_parallel_tool_use);
  return { messages, tools, toolChoice, parallel };
}

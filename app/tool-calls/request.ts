import type { ServerDeps } from '../deps.js';
import { templateFor } from '../prompts.js';
import { badRequest } from '../errors.js';
import type { ChatRequest } from '../schemas.js';
import { detectToolCallParser, type ToolCallParserName } from './index.js';

/**
 * tool_choice needs tools, and a named function must be one of them.
 * 'required' and a named function are served by guided decoding (forced.ts).
 */
export function checkToolChoice(body: Pick<ChatRequest, 'tools' | 'tool_choice'>): void {
  const choice = body.tool_choice;
  if (choice != null && choice !== 'none' && !body.tools?.length) throw badRequest('tool_choice needs tools', 'tool_choice');
  if (choice != null && typeof choice === 'object') {
    const name = choice.function.name;
    if (!(body.tools ?? []).some((t) => t.function.name === name)) throw badRequest(`tool_choice names the function '${name}', which is not among tools`, 'tool_choice');
  }
}

/**
 * The parser for this request's output, or null: no tools, tool_choice
 * 'none', or no format known (--tool-call-parser unset and the chat template
 * names none). Tools are rendered into the prompt either way, as vLLM does.
 */
export function toolParserFor(deps: ServerDeps, body: Pick<ChatRequest, 'tools' | 'tool_choice'>): ToolCallParserName | null {
  if (!body.tools?.length || body.tool_choice === 'none') return null;
  const template = templateFor(deps, body.tools);
  return deps.config.toolCallParser ?? (template ? detectToolCallParser(template.source) : null);
}

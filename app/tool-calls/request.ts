import type { ServerDeps } from '../deps.js';
import { templateFor } from '../prompts.js';
import { badRequest } from '../errors.js';
import type { ChatRequest } from '../schemas.js';
import { detectToolCallParser, type ToolCallParserName } from './index.js';

/**
 * tool_choice 'none' and 'auto' are served; 'required' and a named function
 * would force a call, which needs guided decoding: a 400 until it exists. A
 * named function that is not among tools is a 400 of its own.
 */
export function checkToolChoice(body: Pick<ChatRequest, 'tools' | 'tool_choice'>): void {
  const choice = body.tool_choice;
  if (choice != null && choice !== 'none' && !body.tools?.length) throw badRequest('tool_choice needs tools', 'tool_choice');
  if (choice == null || choice === 'none' || choice === 'auto') return;
  if (typeof choice === 'object') {
    const name = choice.function.name;
    if (!(body.tools ?? []).some((t) => t.function.name === name)) throw badRequest(`tool_choice names the function '${name}', which is not among tools`, 'tool_choice');
  }
  const what = typeof choice === 'object' ? 'a named function' : `'${choice}'`;
  throw badRequest(
    `tool_choice ${what} is not supported yet: forcing a tool call needs guided decoding, which this server does not have; use 'auto' or 'none'`,
    'tool_choice',
  );
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

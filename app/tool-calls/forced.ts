import type { GuideRequest } from '../guided-request.js';
import type { ChatRequest } from '../schemas.js';
import { callOf, jsonEnd, parseJson } from './json-scan.js';
import { randomCallId, type NewCallId, type ParsedCall, type ParsedText, type ToolCallParser } from './types.js';

type ToolBody = Pick<ChatRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'>;

/** A function without parameters takes an empty object. */
const NO_PARAMETERS = { type: 'object', properties: {}, additionalProperties: false };

/**
 * tool_choice 'required' and a named function force a call: the output is
 * guided to JSON that is one, whatever format the model was taught (vLLM
 * does the same), and read back by a parser for that JSON.
 * - a named function: its arguments, valid against its parameters schema;
 * - 'required': a JSON array of {"name", "parameters"} objects, each valid
 *   against the named tool's schema, at least one (exactly one when
 *   parallel_tool_calls is false).
 */
export function forcedToolCalls(body: ToolBody, newId: NewCallId = randomCallId): { guide: GuideRequest; parser: () => ToolCallParser } | null {
  const choice = body.tool_choice;
  const tools = body.tools ?? [];
  if (choice === 'required') {
    const items = tools.map((t) => ({
      type: 'object',
      properties: { name: { const: t.function.name }, parameters: t.function.parameters ?? NO_PARAMETERS },
      required: ['name', 'parameters'],
      additionalProperties: false,
    }));
    const schema = { type: 'array', items: items.length === 1 ? items[0] : { anyOf: items }, minItems: 1, ...(body.parallel_tool_calls === false ? { maxItems: 1 } : {}) };
    return { guide: { spec: { kind: 'json_schema', schema }, param: 'tools' }, parser: () => new RequiredCallsParser(newId) };
  }
  if (choice != null && typeof choice === 'object') {
    const tool = tools.find((t) => t.function.name === choice.function.name)!;
    return { guide: { spec: { kind: 'json_schema', schema: tool.function.parameters ?? NO_PARAMETERS }, param: 'tools' }, parser: () => new NamedCallParser(tool.function.name, newId) };
  }
  return null;
}

/**
 * Reads [{"name": ..., "parameters": {...}}, ...] as it streams: each element
 * becomes a call as soon as it closes. Output cut short by max_tokens: an
 * element left open after complete calls is dropped (a forced call has no
 * content to show it in); with no complete call, the text comes back as
 * content, so the client sees what was generated.
 */
export class RequiredCallsParser implements ToolCallParser {
  private text = '';
  /** Where the next element (or the array's end) is looked for. */
  private at = 0;
  private opened = false;
  private readonly calls: ParsedCall[] = [];

  constructor(private readonly newId: NewCallId = randomCallId) {}

  feed(text: string): ParsedText {
    this.text += text;
    const calls: ParsedCall[] = [];
    for (;;) {
      const i = this.skip(this.at, this.opened ? ', ' : ' ');
      if (!this.opened) {
        if (this.text[i] !== '[') break;
        this.opened = true;
        this.at = i + 1;
        continue;
      }
      if (this.text[i] !== '{') break;
      const end = jsonEnd(this.text, i);
      if (end === null) break;
      const call = callOf(parseJson(this.text.slice(i, end)), ['parameters']);
      if (call === null) break;
      const parsed = { index: this.calls.length, id: this.newId(), ...call };
      this.calls.push(parsed);
      calls.push(parsed);
      this.at = end;
    }
    return calls.length ? { calls } : {};
  }

  end(): ParsedText {
    return this.calls.length === 0 && this.text.length > 0 ? { content: this.text } : {};
  }

  private skip(i: number, chars: string): number {
    while (i < this.text.length && (chars.includes(this.text[i]) || /\s/.test(this.text[i]))) i++;
    return i;
  }
}

/** The whole output is the arguments of one known function; the call is made at the end, when they are complete. */
export class NamedCallParser implements ToolCallParser {
  private text = '';

  constructor(
    private readonly name: string,
    private readonly newId: NewCallId = randomCallId,
  ) {}

  feed(text: string): ParsedText {
    this.text += text;
    return {};
  }

  end(): ParsedText {
    const call = callOf({ name: this.name, arguments: parseJson(this.text) }, ['arguments']);
    return call ? { calls: [{ index: 0, id: this.newId(), ...call }] } : this.text.length ? { content: this.text } : {};
  }
}

import type { TextRewrite } from '../respond.js';
import type { ParsedCall, ToolCallParser } from './types.js';

/**
 * One chat request's tool calls: a parser per choice (respond.ts's rewrite
 * hook), the calls each choice made, and OpenAI's streamed delta shape.
 */
export class ChatToolCalls {
  private readonly made = new Map<number, ParsedCall[]>();

  constructor(private readonly newParser: () => ToolCallParser) {}

  rewrite(index: number): TextRewrite {
    const parser = this.newParser();
    const calls: ParsedCall[] = [];
    this.made.set(index, calls);
    return {
      push: (text, end) => {
        const outs = end ? [parser.feed(text), parser.end()] : [parser.feed(text)];
        const got = outs.flatMap((o) => o.calls ?? []);
        calls.push(...got);
        return { text: outs.map((o) => o.content ?? '').join(''), chunks: got.flatMap((c) => streamedCall(index, c)) };
      },
    };
  }

  /** The calls a choice made, as a message's tool_calls. */
  callsOf(index: number): { id: string; type: 'function'; function: { name: string; arguments: string } }[] {
    return (this.made.get(index) ?? []).map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
}

/** A call as two chunk choices: id, type and name with empty arguments, then the arguments. */
function streamedCall(index: number, c: ParsedCall): object[] {
  const chunk = (call: object) => ({ index, delta: { tool_calls: [call] }, logprobs: null, finish_reason: null });
  return [chunk({ index: c.index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }), chunk({ index: c.index, function: { arguments: c.arguments } })];
}

import type { RequestFinish } from '../../engine/types.js';
import type { ParsedCall } from '../tool-calls/types.js';
import { itemId, type Item } from './convert.js';
import type { ResponsesRequest } from './schema.js';

/**
 * The Response object and its output items, built as the generation goes:
 * streamed, each change is also an event (app/routes/responses.ts sends them
 * with their sequence numbers); collected, only the final object is used.
 */
export class ResponseBuilder {
  readonly output: Item[] = [];
  private message: { item: Item; part: { type: 'output_text'; text: string; annotations: unknown[]; logprobs: unknown[] }; index: number } | null = null;
  private finish: RequestFinish | undefined;

  constructor(
    readonly id: string,
    readonly createdAt: number,
    private readonly model: string,
    private readonly req: ResponsesRequest,
    private readonly promptTokens: number,
  ) {}

  /** Text for the assistant's message; the events that show it (the message and its part opened on the first text). */
  text(text: string): [string, object][] {
    const events: [string, object][] = [];
    if (!this.message) {
      const item: Item = { type: 'message', id: itemId('msg'), status: 'in_progress', role: 'assistant', content: [] };
      const part = { type: 'output_text' as const, text: '', annotations: [], logprobs: [] };
      this.message = { item, part, index: this.output.length };
      this.output.push(item);
      events.push(['response.output_item.added', { output_index: this.message.index, item: structuredClone(item) }]);
      events.push(['response.content_part.added', { item_id: item.id, output_index: this.message.index, content_index: 0, part: structuredClone(part) }]);
      (item.content as object[]).push(part);
    }
    if (text.length > 0) {
      this.message.part.text += text;
      events.push(['response.output_text.delta', { item_id: this.message.item.id, output_index: this.message.index, content_index: 0, delta: text, logprobs: [] }]);
    }
    return events;
  }

  /** A complete tool call; the message before it (if any) is closed first. */
  call(call: ParsedCall): [string, object][] {
    const events = this.closeMessage();
    const index = this.output.length;
    const item: Item = { type: 'function_call', id: itemId('fc'), call_id: call.id, name: call.name, arguments: '', status: 'in_progress' };
    events.push(['response.output_item.added', { output_index: index, item: structuredClone(item) }]);
    this.output.push(item);
    item.arguments = call.arguments;
    events.push(['response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: call.arguments }]);
    events.push(['response.function_call_arguments.done', { item_id: item.id, output_index: index, name: call.name, arguments: call.arguments }]);
    item.status = 'completed';
    events.push(['response.output_item.done', { output_index: index, item: structuredClone(item) }]);
    return events;
  }

  /** The end: open items closed (an answer with no output gets an empty message, as a reply always has one). */
  end(finish: RequestFinish): [string, object][] {
    this.finish = finish;
    const events = this.output.length === 0 ? this.text('') : [];
    events.push(...this.closeMessage());
    return events;
  }

  private closeMessage(): [string, object][] {
    const m = this.message;
    if (!m) return [];
    this.message = null;
    m.item.status = 'completed';
    return [
      ['response.output_text.done', { item_id: m.item.id, output_index: m.index, content_index: 0, text: m.part.text, logprobs: [] }],
      ['response.content_part.done', { item_id: m.item.id, output_index: m.index, content_index: 0, part: structuredClone(m.part) }],
      ['response.output_item.done', { output_index: m.index, item: structuredClone(m.item) }],
    ];
  }

  /** completed, or incomplete when max_output_tokens (or the context) cut the answer. */
  get status(): 'in_progress' | 'completed' | 'incomplete' {
    if (!this.finish) return 'in_progress';
    return this.finish.reason === 'length' ? 'incomplete' : 'completed';
  }

  /** The Response object as it stands (in_progress until end()); error: a failed response's reason. */
  snapshot(error?: { code: string; message: string }): Record<string, unknown> {
    const r = this.req;
    const f = this.finish;
    const status = error ? 'failed' : this.status;
    const cached = f?.cachedPromptTokens ?? 0;
    const outputTokens = f?.completionTokens ?? 0;
    return {
      id: this.id,
      object: 'response',
      created_at: this.createdAt,
      status,
      background: false,
      error: error ?? null,
      incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      instructions: r.instructions ?? null,
      max_output_tokens: r.max_output_tokens ?? null,
      max_tool_calls: null,
      model: this.model,
      output: structuredClone(this.output),
      output_text: this.output.flatMap((x) => (x.type === 'message' ? (x.content as { text: string }[]).map((p) => p.text) : [])).join(''),
      parallel_tool_calls: r.parallel_tool_calls ?? true,
      previous_response_id: r.previous_response_id ?? null,
      reasoning: { effort: null, summary: null },
      service_tier: 'default',
      store: r.store ?? true,
      temperature: r.temperature ?? 1,
      text: { format: r.text?.format ?? { type: 'text' }, verbosity: r.text?.verbosity ?? 'medium' },
      tool_choice: r.tool_choice ?? 'auto',
      tools: (r.tools ?? []).map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? false })),
      top_logprobs: 0,
      top_p: r.top_p ?? 1,
      truncation: 'disabled',
      usage: f
        ? {
            input_tokens: this.promptTokens,
            input_tokens_details: { cached_tokens: cached },
            output_tokens: outputTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: this.promptTokens + outputTokens,
          }
        : null,
      user: r.user ?? null,
      metadata: r.metadata ?? {},
    };
  }
}

import type { RequestFinish } from '../engine/types.js';
import type { ServerDeps } from './deps.js';
import type { ApiError } from './errors.js';
import { failureOf, observed, type Choice } from './generation.js';
import type { RequestOutcome } from './request-log.js';
import { record } from './respond.js';
import type { ParsedCall, ToolCallParser } from './tool-calls/types.js';

/** What one choice produced, in the order it happened, in no API's shape. */
export type ChoiceEvent =
  /** Text to show (tool-call markup already taken out); tokens: how many generated tokens it came with. */
  | { kind: 'text'; text: string; tokens: number }
  | { kind: 'call'; call: ParsedCall }
  /** The last event; failure: the error a request that did not finish (reason error or abort) answers with, else null. */
  | { kind: 'finish'; finish: RequestFinish; failure: ApiError | null };

/**
 * A request's one choice as events: metrics observed, text passed through the
 * tool-call parser when there is one, and the access line's outcome kept
 * (the finish; the text as generated under --log-requests). The Responses and
 * Messages routes format these.
 */
export async function* choiceEvents(deps: ServerDeps, choice: Choice, parser: ToolCallParser | null, outcome: RequestOutcome): AsyncIterable<ChoiceEvent> {
  for await (const d of observed(deps, choice.deltas)) {
    // --log-requests: the text as generated, markup included, as the chat route logs it.
    if (outcome.outputText) outcome.outputText[0] += d.text;
    const outs = parser ? (d.finish ? [parser.feed(d.text), parser.end()] : [parser.feed(d.text)]) : [{ content: d.text }];
    const text = outs.map((o) => o.content ?? '').join('');
    if (text.length > 0 || d.tokenIds.length > 0) yield { kind: 'text', text, tokens: d.tokenIds.length };
    for (const o of outs) for (const call of o.calls ?? []) yield { kind: 'call', call };
    if (d.finish) {
      record(outcome, d.finish, 0);
      yield { kind: 'finish', finish: d.finish, failure: failureOf(d.finish) };
    }
  }
}

import type { ServerResponse } from 'node:http';

import type { Context } from 'hono';

import type { RequestDelta, RequestFinish, TokenLogprob } from '../engine/types.js';
import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';
import { cancelAll, failureOf, observed, usageOf, type Choice } from './generation.js';
import { deferAccessLog, noteOutcome, type RequestOutcome } from './request-log.js';
import { streamEvents } from './sse.js';

/** How one endpoint shapes its choices; the streaming and collecting logic is shared. */
export interface ChoiceFormat {
  /** object of a streamed chunk and of the whole response */
  chunkObject: string;
  fullObject: string;
  /** First chunk of each choice (chat: the role), or null. */
  opening(index: number): object | null;
  /** A chunk choice for new text; state carries per-choice text offsets. */
  delta(index: number, text: string, logprobs: TokenLogprob[] | undefined, textSoFar: number): object;
  /** The last chunk choice, carrying finish_reason. */
  closing(index: number, finish: RequestFinish): object;
  /** A whole choice of a non-streamed response. */
  full(index: number, text: string, logprobs: TokenLogprob[] | undefined, finish: RequestFinish): object;
  wantsLogprobs: boolean;
  /** Per-choice rewriting of the generated text (chat: tool calls parsed out of it); absent: text as generated. */
  rewrite?(index: number): TextRewrite;
}

/** One choice's text rewriter: fed the text as generated; end marks the choice's last text. */
export interface TextRewrite {
  /** The text to show, and extra chunk choices (tool-call deltas) to stream after it. */
  push(text: string, end: boolean): { text: string; chunks: object[] };
}

export interface Generation {
  id: string;
  created: number;
  prompts: number[][];
  choices: Choice[];
  stream: boolean;
  includeUsage: boolean;
  /** The prompt as text, kept only when --log-requests asks for it. */
  promptText?: string;
}

/**
 * Streams the choices as SSE chunks or collects them into one body. A request
 * that does not finish (a failed step, the server's grace period over) never
 * looks finished: collected, it is an error response; streamed, an error event
 * ends the stream without finish_reason and without [DONE].
 */
export function respond(c: Context, deps: ServerDeps, g: Generation, f: ChoiceFormat): Response | Promise<Response> {
  const outcome = startOutcome(deps, g);
  if (!g.stream) return collect(c, deps, g, f, outcome);
  deferAccessLog(c);
  const envelope = (choices: object[]) => ({ id: g.id, object: f.chunkObject, created: g.created, model: deps.modelName, choices });
  let ended = false;
  return streamEvents(c, () => cancelAll(deps, g.choices), async (sink) => {
    try {
      for (const ch of g.choices) {
        const open = f.opening(ch.index);
        if (open) await sink.send(JSON.stringify(envelope([open])));
      }
      const finishes: RequestFinish[] = new Array(g.choices.length);
      let failure: ApiError | null = null;
      await Promise.all(
        g.choices.map(async (ch, k) => {
          let sent = 0;
          const rewrite = f.rewrite?.(ch.index);
          for await (const d of observed(deps, ch.deltas)) {
            if (outcome.outputText) outcome.outputText[k] += d.text;
            if (d.finish) {
              finishes[k] = d.finish;
              record(outcome, d.finish, k);
              const failed = failureOf(d.finish);
              if (failed) {
                failure ??= failed;
                cancelAll(deps, g.choices, failed.message);
                continue;
              }
            }
            if (failure || ended) continue;
            const shown = rewrite ? rewrite.push(d.text, !!d.finish) : { text: d.text, chunks: [] };
            // One chunk per generated token, as vLLM sends them, even when the token adds no text yet
            // (an incomplete UTF-8 sequence, a possible stop string): clients see progress at the
            // token rate. The last token's empty text rides on the closing chunk instead, and a
            // token that completes a tool call is carried by the call's chunks.
            const progress = d.tokenIds.length > 0 && !d.finish && shown.chunks.length === 0;
            if (shown.text.length > 0 || progress || (f.wantsLogprobs && d.logprobs?.length)) {
              await sink.send(JSON.stringify(envelope([f.delta(ch.index, shown.text, f.wantsLogprobs ? d.logprobs : undefined, sent)])));
              sent += shown.text.length;
            }
            for (const chunk of shown.chunks) await sink.send(JSON.stringify(envelope([chunk])));
            if (d.finish) await sink.send(JSON.stringify(envelope([f.closing(ch.index, d.finish)])));
          }
        }),
      );
      if (failure) return endWithError(sink, outcome, failure);
      if (ended) return;
      if (g.includeUsage) await sink.send(JSON.stringify({ ...envelope([]), usage: usageOf(g.prompts, finishes, g.choices) }));
      await sink.send('[DONE]');
    } catch (e) {
      // The other choices' loops may still be running: nothing more is sent after the error event.
      ended = true;
      cancelAll(deps, g.choices, 'the server failed while streaming');
      endWithError(sink, outcome, new ApiError(500, `internal error while streaming: ${(e as Error).message}`, 'server_error', null, 'internal_error'));
    } finally {
      noteOutcome(c, outcome);
    }
  });
}

function endWithError(sink: { send(d: string): unknown }, outcome: RequestOutcome, e: ApiError): void {
  outcome.error = { status: e.status, message: e.message, code: e.code };
  sink.send(JSON.stringify(e.body()));
}

async function collect(c: Context, deps: ServerDeps, g: Generation, f: ChoiceFormat, outcome: RequestOutcome): Promise<Response> {
  let clientGone = false;
  const stopWatching = onClientGone(c, () => {
    clientGone = true;
    cancelAll(deps, g.choices);
  });
  let failure: ApiError | null = null;
  try {
    const results = await Promise.all(
      g.choices.map(async (ch, k) => {
        let text = '';
        const lps: TokenLogprob[] = [];
        let finish: RequestFinish | undefined;
        for await (const d of observed(deps, ch.deltas) as AsyncIterable<RequestDelta>) {
          text += d.text;
          if (d.logprobs) lps.push(...d.logprobs);
          if (d.finish) {
            finish = d.finish;
            record(outcome, d.finish, k);
            if (outcome.outputText) outcome.outputText[k] = text;
            // One choice that cannot finish fails the response: stop the others now. The first
            // failure to arrive is the cause; the others then end as cancelled by it.
            const failed = failureOf(d.finish);
            if (failed) {
              failure ??= failed;
              cancelAll(deps, g.choices, failed.message);
            }
          }
        }
        return { ch, text, lps, finish: finish! };
      }),
    );
    // Nobody reads a response to a client that left; 499 (nginx's "client closed request") keeps it out of the 5xx counts.
    if (clientGone) return c.body(null, 499 as never);
    if (failure) throw failure;
    const shown = (index: number, text: string) => (f.rewrite ? f.rewrite(index).push(text, true).text : text);
    return c.json({
      id: g.id,
      object: f.fullObject,
      created: g.created,
      model: deps.modelName,
      choices: results.map((r) => f.full(r.ch.index, shown(r.ch.index, r.text), f.wantsLogprobs ? r.lps : undefined, r.finish)),
      usage: usageOf(g.prompts, results.map((r) => r.finish), g.choices),
    });
  } finally {
    stopWatching();
    noteOutcome(c, outcome);
  }
}

/**
 * Calls gone if the client disconnects before the response is sent; returns
 * the unsubscribe. Under Node the response's own close event is used:
 * c.req.raw.signal would build the whole Web Request just to watch it.
 */
export function onClientGone(c: Context, gone: () => void): () => void {
  const res = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (res) {
    const onClose = () => {
      if (!res.writableFinished) gone();
    };
    // It may have left while the request was read and tokenized, after 'close' fired.
    if (res.destroyed || res.socket?.destroyed) {
      gone();
      return () => undefined;
    }
    res.once('close', onClose);
    return () => res.off('close', onClose);
  }
  const signal = c.req.raw.signal;
  signal.addEventListener('abort', gone);
  return () => signal.removeEventListener('abort', gone);
}

export function startOutcome(deps: ServerDeps, g: Pick<Generation, 'prompts' | 'choices' | 'promptText'>): RequestOutcome {
  const o: RequestOutcome = {
    model: deps.modelName,
    promptTokens: g.prompts.reduce((s, p) => s + p.length, 0),
    completionTokens: 0,
    ttftMs: null,
    finishReasons: new Array(g.choices.length).fill('abort'),
  };
  if (deps.config.logRequests) {
    o.promptText = g.promptText;
    o.outputText = new Array(g.choices.length).fill('');
  }
  return o;
}

/** Folds one choice's finish into the outcome. */
export function record(o: RequestOutcome, f: RequestFinish, k: number): void {
  o.completionTokens += f.completionTokens;
  o.finishReasons[k] = f.reason;
  if (f.timing.firstToken !== null) {
    const ttft = f.timing.firstToken - f.timing.arrival;
    o.ttftMs = o.ttftMs === null ? ttft : Math.min(o.ttftMs, ttft);
  }
}

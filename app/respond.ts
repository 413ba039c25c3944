import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';

import type { RequestDelta, RequestFinish, TokenLogprob } from '../engine/types.js';
import type { ServerDeps } from './deps.js';
import type { ApiError } from './errors.js';
import { cancelAll, engineFailure, observed, usageOf, type Choice } from './generation.js';

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
}

export interface Generation {
  id: string;
  created: number;
  prompts: number[][];
  choices: Choice[];
  stream: boolean;
  includeUsage: boolean;
}

export function respond(c: Context, deps: ServerDeps, g: Generation, f: ChoiceFormat): Response | Promise<Response> {
  const envelope = (choices: object[]) => ({ id: g.id, object: f.chunkObject, created: g.created, model: deps.modelName, choices });
  if (!g.stream) return collect(c, deps, g, f);
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => cancelAll(deps, g.choices));
    const send = async (data: string) => {
      if (!stream.aborted && !stream.closed) await stream.writeSSE({ data });
    };
    for (const ch of g.choices) {
      const open = f.opening(ch.index);
      if (open) await send(JSON.stringify(envelope([open])));
    }
    const finishes: RequestFinish[] = new Array(g.choices.length);
    let failure: ApiError | null = null;
    await Promise.all(
      g.choices.map(async (ch, k) => {
        let sent = 0;
        for await (const d of observed(deps, ch.deltas)) {
          if (d.finish?.reason === 'error') failure = engineFailure(d.finish);
          if (d.text.length > 0 || (f.wantsLogprobs && d.logprobs?.length)) {
            await send(JSON.stringify(envelope([f.delta(ch.index, d.text, f.wantsLogprobs ? d.logprobs : undefined, sent)])));
            sent += d.text.length;
          }
          if (d.finish) {
            finishes[k] = d.finish;
            if (d.finish.reason === 'stop' || d.finish.reason === 'length') await send(JSON.stringify(envelope([f.closing(ch.index, d.finish)])));
          }
        }
      }),
    );
    if (failure) await send(JSON.stringify((failure as ApiError).body()));
    else if (g.includeUsage) await send(JSON.stringify({ ...envelope([]), usage: usageOf(g.prompts, finishes, g.choices) }));
    await send('[DONE]');
  });
}

async function collect(c: Context, deps: ServerDeps, g: Generation, f: ChoiceFormat): Promise<Response> {
  const onAbort = () => cancelAll(deps, g.choices);
  c.req.raw.signal.addEventListener('abort', onAbort);
  try {
    const results = await Promise.all(
      g.choices.map(async (ch) => {
        let text = '';
        const lps: TokenLogprob[] = [];
        let finish: RequestFinish | undefined;
        for await (const d of observed(deps, ch.deltas) as AsyncIterable<RequestDelta>) {
          text += d.text;
          if (d.logprobs) lps.push(...d.logprobs);
          if (d.finish) finish = d.finish;
        }
        return { ch, text, lps, finish: finish! };
      }),
    );
    const failed = results.find((r) => r.finish.reason === 'error');
    if (failed) throw engineFailure(failed.finish);
    return c.json({
      id: g.id,
      object: f.fullObject,
      created: g.created,
      model: deps.modelName,
      choices: results.map((r) => f.full(r.ch.index, r.text, f.wantsLogprobs ? r.lps : undefined, r.finish)),
      usage: usageOf(g.prompts, results.map((r) => r.finish), g.choices),
    });
  } finally {
    c.req.raw.signal.removeEventListener('abort', onAbort);
  }
}

// KServe v2 / Triton's HTTP protocol for the served model: server and model
// metadata, health, infer (the seed's input_ids -> logits request, and
// TensorRT-LLM's ensemble tensors text_input -> text_output), and Triton's
// generate extension (generate, generate_stream as server-sent events).
// Errors are KServe's shape, {"error": "..."} (kserveErrorBody, app.ts).
import { createRequire } from 'node:module';

import type { Context, Hono } from 'hono';

import { readJson, parseBody } from '../body.js';
import type { ServerDeps } from '../deps.js';
import { ApiError, badRequest } from '../errors.js';
import { cancelAll, newId, toApiError } from '../generation.js';
import { onClientGone } from '../respond.js';
import { apiKeyAuth, refuseWhileDraining } from '../middleware.js';
import { streamEvents } from '../sse.js';
import { InferRequest, intRows, scalars, strings, type Tensor } from './tensors.js';
import { startText, textPieces, wholeText, type TextJob } from './text.js';

const VERSION = '1';
const serverVersion = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

/** The KServe error body of an API error. */
export const kserveErrorBody = (e: ApiError) => ({ error: e.message });
export const isKservePath = (path: string) => path === '/v2' || path.startsWith('/v2/');

// Inputs and outputs the metadata lists; -1 is a variable dimension.
const INPUTS = [
  { name: 'input_ids', datatype: 'INT32', shape: [-1, -1], optional: true },
  { name: 'text_input', datatype: 'BYTES', shape: [-1, 1], optional: true },
  { name: 'max_tokens', datatype: 'INT32', shape: [-1, 1], optional: true },
  { name: 'temperature', datatype: 'FP32', shape: [-1, 1], optional: true },
  { name: 'top_k', datatype: 'INT32', shape: [-1, 1], optional: true },
  { name: 'top_p', datatype: 'FP32', shape: [-1, 1], optional: true },
  { name: 'random_seed', datatype: 'UINT64', shape: [-1, 1], optional: true },
  { name: 'stop_words', datatype: 'BYTES', shape: [-1, -1], optional: true },
  { name: 'bad_words', datatype: 'BYTES', shape: [-1, -1], optional: true },
  { name: 'exclude_input_in_output', datatype: 'BOOL', shape: [-1, 1], optional: true },
];
const OUTPUTS = [
  { name: 'logits', datatype: 'FP32', shape: [-1, -1] },
  { name: 'text_output', datatype: 'BYTES', shape: [-1, 1] },
];
const KNOWN = new Set(INPUTS.map((i) => i.name).concat(['seed', 'stream']));

/** The served model the path names, or a 404. */
function modelOf(models: ServerDeps[], c: Context): ServerDeps {
  const name = c.req.param('model')!;
  const deps = models.find((m) => m.modelName === name);
  if (!deps) throw new ApiError(404, `model '${name}' is not served here (served: ${models.map((m) => `'${m.modelName}'`).join(', ')})`, 'invalid_request_error', null, 'model_not_found');
  const version = c.req.param('version');
  if (version !== undefined && version !== VERSION) throw new ApiError(404, `model '${name}' has no version '${version}' (versions: ${VERSION})`, 'invalid_request_error', null, 'model_not_found');
  return deps;
}

export function kserveRoutes(app: Hono, models: ServerDeps[]): void {
  const deps = models[0];  // the server-wide parts (config, state) are the first model's
  app.get('/v2', (c) => c.json({ name: 'tachyon', version: serverVersion, extensions: ['generate'] }));
  app.get('/v2/health/live', (c) => c.body(null, 200));
  app.get('/v2/health/ready', (c) => c.body(null, deps.state.ready && !deps.state.draining ? 200 : 503));
  app.use('/v2/models/*', apiKeyAuth(deps.config.apiKeys));
  const draining = refuseWhileDraining(deps);
  for (const base of ['/v2/models/:model', '/v2/models/:model/versions/:version']) {
    app.get(base, (c) => c.json({ name: modelOf(models, c).modelName, versions: [VERSION], platform: 'tachyon', inputs: INPUTS, outputs: OUTPUTS }));
    app.get(`${base}/ready`, (c) => {
      modelOf(models, c);
      return c.body(null, deps.state.ready && !deps.state.draining ? 200 : 503);
    });
    app.post(`${base}/infer`, draining, (c) => infer(modelOf(models, c), c));
    app.post(`${base}/generate`, draining, (c) => generate(modelOf(models, c), c, false));
    app.post(`${base}/generate_stream`, draining, (c) => generate(modelOf(models, c), c, true));
  }
}

async function infer(deps: ServerDeps, c: Context): Promise<Response> {
  const name = deps.modelName;
  const req = parseBody(InferRequest, await readJson(c));
  const byName = new Map<string, Tensor>();
  for (const t of req.inputs) {
    if (!KNOWN.has(t.name)) throw badRequest(`unknown input '${t.name}' (inputs: ${INPUTS.map((i) => i.name).join(', ')})`, t.name);
    if (byName.has(t.name)) throw badRequest(`input '${t.name}' is given twice`, t.name);
    byName.set(t.name, t);
  }
  const ids = byName.get('input_ids'), text = byName.get('text_input');
  if (!ids === !text) throw badRequest("give exactly one of the inputs 'input_ids' (logits out) and 'text_input' (text_output out)", 'inputs');
  const base = { model_name: name, model_version: VERSION, ...(req.id !== undefined ? { id: req.id } : {}) };
  if (ids) return c.json({ ...base, outputs: [await logitsOf(deps, c, ids, req.parameters ?? {})] });
  const prompts = strings(text!);
  const jobs = textJobs(byName, prompts);
  const exclude = byName.has('exclude_input_in_output') ? (scalars(byName.get('exclude_input_in_output')!, prompts.length, 'bool') as boolean[]) : prompts.map(() => false);
  const started: Awaited<ReturnType<typeof startText>>[] = [];
  const stopWatching = onClientGone(c, () => cancelAll(deps, started.map((s) => s.choice), 'the client disconnected'));
  try {
    for (const job of jobs) started.push(await startText(deps, job));
    const texts = await Promise.all(started.map((s) => wholeText(deps, s.choice)));
    // As TensorRT-LLM's ensemble: the output repeats the input unless exclude_input_in_output.
    const data = texts.map((t, i) => (exclude[i] ? t : prompts[i] + t));
    return c.json({ ...base, outputs: [{ name: 'text_output', datatype: 'BYTES', shape: text!.shape.length === 2 ? [data.length, 1] : [data.length], data }] });
  } catch (e) {
    cancelAll(deps, started.map((s) => s.choice));
    throw e;
  } finally {
    stopWatching();
  }
}

/** One TextJob per batch item from the TensorRT-LLM ensemble's optional inputs. */
function textJobs(byName: Map<string, Tensor>, prompts: string[]): TextJob[] {
  const b = prompts.length;
  const num = (name: string, kind: 'int' | 'float') => (byName.has(name) ? (scalars(byName.get(name)!, b, kind) as number[]) : undefined);
  const maxTokens = num('max_tokens', 'int'), temperature = num('temperature', 'float'), topK = num('top_k', 'int'), topP = num('top_p', 'float');
  const seed = num('random_seed', 'int') ?? num('seed', 'int');
  const words = (name: string) => {
    const t = byName.get(name);
    if (!t) return undefined;
    const all = strings(t);
    // [batch, k]: row i for item i; [k] or [1, k]: the same words for every item.
    const perItem = t.shape.length === 2 && t.shape[0] === b && b > 1;
    return (i: number) => (perItem ? all.slice((i * all.length) / b, ((i + 1) * all.length) / b) : all);
  };
  const stop = words('stop_words'), bad = words('bad_words');
  // TensorRT-LLM's backend decodes greedily unless asked to sample (its top_k and top_p default to 0):
  // so do these routes, where /v1 keeps OpenAI's temperature 1.
  const sampled = temperature !== undefined || topK !== undefined || topP !== undefined;
  return prompts.map((p, i) => ({
    text: p,
    maxTokens: maxTokens?.[i],
    temperature: sampled ? temperature?.[i] : 0,
    topK: topK?.[i],
    topP: topP?.[i],
    seed: seed?.[i],
    stopWords: stop?.(i),
    badWords: bad?.(i),
  }));
}

/**
 * The seed's request: input_ids [n] or [batch, n] -> logits FP32 [batch, vocab] after the last
 * position (the distribution of the next token), or [batch, n, vocab] after every position with
 * parameters.all_positions (each prefix is its own request; shared prefixes come from the KV cache).
 */
async function logitsOf(deps: ServerDeps, c: Context, t: Tensor, parameters: Record<string, unknown>) {
  const rows = intRows(t, ['INT32', 'INT64']);
  if (rows.length === 0 || rows[0].length === 0) throw badRequest(`input_ids is empty (shape [${t.shape.join(', ')}])`, 'input_ids');
  const V = deps.engine.vocabSize;
  rows.forEach((row, r) =>
    row.forEach((id, k) => {
      if (id < 0 || id >= V) throw badRequest(`input_ids[${rows.length > 1 ? `${r}, ` : ''}${k}] = ${id} is outside the vocabulary of ${V}`, 'input_ids');
    }),
  );
  const all = parameters.all_positions === true;
  const prefixes = rows.flatMap((row) => (all ? row.map((_, k) => row.slice(0, k + 1)) : [row]));
  for (const p of prefixes) if (p.length >= deps.maxModelLen) throw badRequest(`input_ids has ${p.length} tokens; this model's context is ${deps.maxModelLen}`, 'input_ids');
  if (prefixes.length > deps.config.maxQueue)
    throw badRequest(`this request needs ${prefixes.length} sequences but the server queues at most ${deps.config.maxQueue} (--max-queue); split it`, 'input_ids', 'too_many_sequences');
  const id = newId('infer');
  const started: string[] = [];
  const cancel = () => started.forEach((r) => deps.engine.cancel(r));
  const stopWatching = onClientGone(c, cancel);
  try {
    const runs = prefixes.map((prompt, i) => {
      const requestId = `${id}-${i}`;
      const deltas = deps.engine.submit({ id: requestId, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: 1, ignoreEos: true }, returnLogits: true });
      started.push(requestId);
      return (async () => {
        for await (const d of deltas) {
          if (d.logits) return d.logits;
          if (d.finish && d.finish.reason !== 'length' && d.finish.reason !== 'stop') throw new ApiError(500, `inference failed: ${d.finish.error ?? d.finish.reason}`, 'server_error');
        }
        throw new ApiError(500, 'inference returned no logits', 'server_error');
      })();
    });
    const logits = await Promise.all(runs);
    const data = new Array<number>(logits.length * V);
    logits.forEach((l, i) => {
      for (let v = 0; v < V; v++) data[i * V + v] = l[v];
    });
    const shape = all ? [rows.length, rows[0].length, V] : [rows.length, V];
    return { name: 'logits', datatype: 'FP32', shape, data };
  } catch (e) {
    cancel();
    throw toApiError(e);
  } finally {
    stopWatching();
  }
}

/** Triton's generate extension: the model's inputs as top-level JSON fields, text_output back. */
async function generate(deps: ServerDeps, c: Context, stream: boolean): Promise<Response> {
  const name = deps.modelName;
  const body = (await readJson(c)) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the body must be a JSON object');
  if (typeof body.text_input !== 'string') throw badRequest("'text_input' (a string) is required", 'text_input');
  // Each field as a one-element tensor of the type the metadata names, so both routes check values alike.
  const byName = new Map<string, Tensor>();
  // Triton's generate takes the model's inputs as fields, and its examples put sampling settings in
  // parameters as well: both are read, a field winning over the same name in parameters.
  const params = body.parameters ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw badRequest("'parameters' must be a JSON object", 'parameters');
  for (const [key, value] of Object.entries({ ...(params as Record<string, unknown>), ...body })) {
    if (key === 'parameters' || key === 'stream' || key === 'text_input' || value === null || value === '' || (Array.isArray(value) && value.length === 0)) continue;
    const spec = INPUTS.find((i) => i.name === key) ?? (key === 'seed' ? { datatype: 'UINT64' } : undefined);
    if (!spec || key === 'input_ids') throw badRequest(`unknown field '${key}'`, key);
    const list = Array.isArray(value) ? value : [value];
    byName.set(key, { name: key, shape: [list.length], datatype: typeof list[0] === 'boolean' ? 'BOOL' : typeof list[0] === 'string' ? 'BYTES' : Number.isInteger(list[0]) && spec.datatype !== 'FP32' ? 'INT64' : 'FP32', data: list });
  }
  const [job] = textJobs(byName, [body.text_input]);
  const exclude = byName.has('exclude_input_in_output') ? (scalars(byName.get('exclude_input_in_output')!, 1, 'bool')[0] as boolean) : stream;
  const { choice } = await startText(deps, job);
  const base = { model_name: name, model_version: VERSION };
  if (!stream) {
    const stopWatching = onClientGone(c, () => cancelAll(deps, [choice], 'the client disconnected'));
    try {
      const text = await wholeText(deps, choice);
      return c.json({ ...base, text_output: exclude ? text : body.text_input + text });
    } catch (e) {
      cancelAll(deps, [choice]);
      throw e;
    } finally {
      stopWatching();
    }
  }
  // Streamed: one event per piece of new text (the input is not repeated unless exclude_input_in_output is false).
  return streamEvents(c, () => cancelAll(deps, [choice], 'the client disconnected'), async (sink) => {
    try {
      if (!exclude) await sink.send(JSON.stringify({ ...base, text_output: body.text_input }));
      for await (const piece of textPieces(deps, choice)) {
        if (sink.closed) return;
        await sink.send(JSON.stringify({ ...base, text_output: piece }));
      }
    } catch (e) {
      await sink.send(JSON.stringify({ error: e instanceof ApiError ? e.message : 'internal server error' }));
    }
  });
}

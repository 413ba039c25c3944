// npm run bench:serve -- [options] [-- server flags]: an HTTP serving
// benchmark shaped like `vllm bench serve`. It starts the server itself (or
// targets --url), sends random fixed-length requests under a concurrency cap
// and/or Poisson arrivals, and reports throughput and TTFT / TPOT / ITL / E2E.
// With --engine-only it first runs the same workload through the engine in
// this process, so the HTTP figure can be read as a share of the engine's.
import { setMaxListeners } from 'node:events';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { depsOf, type ServerDeps } from '../app/deps.js';
import { loadModel, type LoadedModel } from '../app/load-model.js';
import type { Log } from '../app/logger.js';
import { chatPromptTokens } from '../app/prompts.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { readModelConfig } from '../native/model-config.js';
import { sendToEngine, timeSteps, type EngineWorkload } from './serve-engine.js';
import { chatTokenCount, httpClient, probeVocab, scrapeBuckets, scrapeCpuSeconds, scrapeMetrics, sendGeneration, servedModel, type HttpClient } from './serve-http.js';
import { driveLoad } from './serve-load.js';
import { formatMarkdown, formatRun, type BenchReport, type RunReport } from './serve-report.js';
import { processCpuSeconds, spawnServer, type SpawnedServer } from './serve-server.js';
import { percentile, runStats } from './serve-stats.js';
import { poissonOffsets, promptIdRange, seededRandom, textPrompt, tokenPrompt } from './serve-workload.js';

const USAGE = `usage: node dist/bench/serve.js [options] [-- server flags]
       npm run bench:serve -- [options] [-- server flags]

Starts the server (node dist/app/main.js --port 0 <server flags>) and benchmarks
it over HTTP, or benchmarks a running server given with --url.

  --url URL             target a running server instead of starting one
  --input-len N         prompt tokens per request (default 128)
  --output-len N        output tokens per request: max_tokens, ignore_eos (default 128)
  --num-prompts N       requests in the measured run (default 1000)
  --concurrency N       most requests in flight (default: no cap)
  --request-rate R      Poisson arrivals, R requests per second (default: all at once)
  --ramp-up-s S         the first --concurrency requests start evenly over S seconds
                        (default 0: all at once), to measure the steady state
  --stream, --no-stream stream the responses (default) or not (then only E2E is measured)
  --prompt-kind KIND    tokens: random token ids on /v1/completions (default);
                        text: random words on /v1/chat/completions (length approximate,
                        calibrated with POST /tokenize)
  --vocab-size N        draw prompt ids below N; ids come from [min(100, N/8), min(N, 20000)),
                        which holds ordinary tokens in every tokenizer used (default: the
                        model's config.json, or with --url probed through POST /detokenize)
  --temperature T       sampling temperature (default 0); each request gets seed = --seed + i
  --seed N              seed of prompts, arrivals and sampling (default 0)
  --warmup N            requests sent before the measured window (default 1)
  --engine-only         before starting the server, run the same workload through the
                        engine in this process (no HTTP) and report HTTP / engine
  --api-key KEY         Authorization: Bearer KEY on every request
  --markdown            also print a Markdown section for bench/RESULTS.md
  --help                this text

Flags after -- go to the server (and to the engine-only run), e.g.
  node dist/bench/serve.js --input-len 128 --output-len 128 --concurrency 2048 \\
    --num-prompts 4096 -- --model DIR --device cuda --dtype fp8
Mind the server's --max-queue (default: cpu 256, cuda 8192) and --max-num-seqs: requests beyond
both are refused with 429 and count as failed.
The last line of output is one JSON object with every figure.`;

interface Options {
  url?: string;
  inputLen: number;
  outputLen: number;
  numPrompts: number;
  concurrency: number;
  requestRate: number;
  /** Seconds over which the first `concurrency` requests start (0: all at once). */
  rampUpS: number;
  stream: boolean;
  promptKind: 'tokens' | 'text';
  vocabSize?: number;
  temperature: number;
  seed: number;
  warmup: number;
  engineOnly: boolean;
  apiKey?: string;
  markdown: boolean;
  help: boolean;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): { o: Options; serverFlags: string[] } {
  const split = argv.indexOf('--');
  const mine = split < 0 ? argv : argv.slice(0, split);
  const serverFlags = split < 0 ? [] : argv.slice(split + 1);
  let values;
  try {
    ({ values } = parseArgs({
      args: mine,
      strict: true,
      options: {
        url: { type: 'string' },
        'input-len': { type: 'string', default: '128' },
        'output-len': { type: 'string', default: '128' },
        'num-prompts': { type: 'string', default: '1000' },
        concurrency: { type: 'string' },
        'request-rate': { type: 'string' },
        'ramp-up-s': { type: 'string', default: '0' },
        stream: { type: 'boolean' },
        'no-stream': { type: 'boolean' },
        'prompt-kind': { type: 'string', default: 'tokens' },
        'vocab-size': { type: 'string' },
        temperature: { type: 'string', default: '0' },
        seed: { type: 'string', default: '0' },
        warmup: { type: 'string', default: '1' },
        'engine-only': { type: 'boolean', default: false },
        'api-key': { type: 'string' },
        markdown: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const num = (name: string, v: string | undefined, min: number, integer = true): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, not ${v}`);
    return n;
  };
  if (values.stream && values['no-stream']) throw new UsageError('give one of --stream and --no-stream');
  const kind = values['prompt-kind'];
  if (kind !== 'tokens' && kind !== 'text') throw new UsageError(`--prompt-kind is tokens or text, not ${kind}`);
  const o: Options = {
    url: values.url,
    inputLen: num('input-len', values['input-len'], 1),
    outputLen: num('output-len', values['output-len'], 1),
    numPrompts: num('num-prompts', values['num-prompts'], 1),
    concurrency: values.concurrency === undefined ? Infinity : num('concurrency', values.concurrency, 1),
    requestRate: values['request-rate'] === undefined ? Infinity : num('request-rate', values['request-rate'], Number.MIN_VALUE, false),
    rampUpS: num('ramp-up-s', values['ramp-up-s'], 0, false),
    stream: !values['no-stream'],
    promptKind: kind,
    vocabSize: values['vocab-size'] === undefined ? undefined : num('vocab-size', values['vocab-size'], 2),
    temperature: num('temperature', values.temperature, 0, false),
    seed: num('seed', values.seed, 0),
    warmup: num('warmup', values.warmup, 0),
    engineOnly: values['engine-only']!,
    apiKey: values['api-key'],
    markdown: values.markdown!,
    help: values.help!,
  };
  if (o.url !== undefined && serverFlags.length > 0) throw new UsageError('server flags after -- need a server this benchmark starts; drop --url or the flags');
  if (o.url !== undefined && o.engineOnly) throw new UsageError('--engine-only loads the model from the server flags after --; it cannot be used with --url');
  return { o, serverFlags };
}

const quietLog: Log = { debug() {}, info() {}, warn() {}, error() {} };
const note = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface Prompt {
  /** Token ids (--prompt-kind tokens). */
  ids?: number[];
  /** A user message (--prompt-kind text). */
  text?: string;
}

interface Workload {
  prompts: Prompt[];
  warmup: Prompt[];
  offsetsMs: number[];
  /** How prompts were drawn, for the report. */
  describe: Record<string, unknown>;
}

/**
 * With --ramp-up-s, the first `concurrency` requests start evenly over that
 * many seconds instead of at once, so a fixed-concurrency run is measured in
 * its steady state rather than as one synchronized wave (which the closed loop
 * of equal-length requests would otherwise keep repeating).
 */
function rampUp(offsets: number[], o: Options): number[] {
  if (o.rampUpS <= 0 || !Number.isFinite(o.concurrency)) return offsets;
  const n = Math.min(o.concurrency, offsets.length);
  return offsets.map((t, i) => (i < n ? Math.max(t, (i * o.rampUpS * 1000) / n) : t));
}

/**
 * Draws the run's prompts and arrivals from --seed. Text prompts get the word
 * count that makes the chat-templated prompt about --input-len tokens, from
 * two token counts (1 word and 200 words) of the model's own tokenizer.
 */
async function buildWorkload(o: Options, vocabSize: number, countChat: (text: string) => Promise<number>): Promise<Workload> {
  const rand = seededRandom(o.seed);
  const total = o.numPrompts + o.warmup;
  if (o.promptKind === 'tokens') {
    const range = promptIdRange(vocabSize);
    const all = Array.from({ length: total }, () => ({ ids: tokenPrompt(rand, o.inputLen, range) }));
    return {
      prompts: all.slice(0, o.numPrompts),
      warmup: all.slice(o.numPrompts),
      offsetsMs: rampUp(poissonOffsets(rand, o.numPrompts, o.requestRate), o),
      describe: { vocabSize, idRange: [range.lo, range.hi] },
    };
  }
  const calib = seededRandom(o.seed ^ 0x5bd1e995);
  const one = await countChat(textPrompt(calib, 1));
  const many = await countChat(textPrompt(calib, 200));
  const perWord = Math.max((many - one) / 199, 0.01);
  const words = Math.max(1, Math.round(1 + (o.inputLen - one) / perWord));
  const all = Array.from({ length: total }, () => ({ text: textPrompt(rand, words) }));
  return {
    prompts: all.slice(0, o.numPrompts),
    warmup: all.slice(o.numPrompts),
    offsetsMs: rampUp(poissonOffsets(rand, o.numPrompts, o.requestRate), o),
    describe: { wordsPerPrompt: words, tokensPerWord: perWord, templateTokens: one - perWord },
  };
}

let depsOfModel: { model: LoadedModel; deps: ServerDeps } | undefined;
/**
 * What the server would build around this model, so text prompts are
 * rendered and tokenized by the server's own code (app/prompts.ts). Built
 * only for text prompts, before any clock starts.
 */
function serverDeps(model: LoadedModel): ServerDeps {
  if (depsOfModel?.model !== model) {
    depsOfModel = { model, deps: depsOf(model, 'bench') };
  }
  return depsOfModel.deps;
}

const cores = (cpuS: number | null, wallMs: number) => (cpuS === null || wallMs <= 0 ? null : cpuS / (wallMs / 1000));
const processCpuS = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null);

async function engineRun(o: Options, model: LoadedModel, w: Workload, signal: AbortSignal): Promise<RunReport> {
  // The engine takes token ids: text prompts go through the chat template as the server would render them.
  const deps = o.promptKind === 'text' ? serverDeps(model) : undefined;
  const idsOf = async (p: Prompt) => p.ids ?? (await chatPromptTokens(deps!, [{ role: 'user', content: p.text! }], true));
  const prompts = await Promise.all(w.prompts.map(idsOf));
  const warmup = await Promise.all(w.warmup.map(idsOf));
  const sampling = (i: number): EngineWorkload => ({ maxTokens: o.outputLen, temperature: o.temperature, seed: o.seed + i });
  const warm = await Promise.all(warmup.map((p, i) => sendToEngine(model, `warmup-${i}`, p, sampling(o.numPrompts + i), signal)));
  if (warm.some((r) => !r.ok)) note(`engine-only warmup failed: ${warm.find((r) => !r.ok)!.error}`);
  const steps = timeSteps(model);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const load = await driveLoad(
    { concurrency: o.concurrency, offsetsMs: w.offsetsMs },
    (i) => sendToEngine(model, `bench-${i}`, prompts[i], sampling(i), signal),
    signal,
  );
  const wallMs = performance.now() - t0;
  const cpuS = processCpuS(process.cpuUsage(cpu0));
  steps.uninstall();
  return {
    name: 'engine only',
    stats: runStats(load.records, load.endMs - load.startMs),
    streamed: true,
    serverCores: cores(cpuS, wallMs),
    clientCores: cores(cpuS, wallMs)!,
    stepMedianMs: finiteOrNull(percentile(steps.all, 50)),
    decodeStepMedianMs: finiteOrNull(percentile(steps.decode, 50)),
    steps: steps.all.length,
  };
}

function requestBody(o: Options, model: string, p: Prompt, i: number): string {
  const common = {
    model,
    max_tokens: o.outputLen,
    ignore_eos: true,
    temperature: o.temperature,
    seed: o.seed + i,
    stream: o.stream,
    ...(o.stream ? { stream_options: { include_usage: true } } : {}),
  };
  return JSON.stringify(p.ids ? { ...common, prompt: p.ids } : { ...common, messages: [{ role: 'user', content: p.text }] });
}

async function httpRun(o: Options, client: HttpClient, model: string, w: Workload, serverCpuS: () => Promise<number | null>, signal: AbortSignal): Promise<RunReport> {
  const target = { client, path: o.promptKind === 'text' ? '/v1/chat/completions' : '/v1/completions', stream: o.stream };
  // Bodies are serialized before the clock starts; prompt token counts are replaced by the usage figures when they come.
  const bodies = w.prompts.map((p, i) => requestBody(o, model, p, i));
  const promptLen = (p: Prompt) => p.ids?.length ?? 0;
  const warm = await Promise.all(w.warmup.map((p, i) => sendGeneration(target, requestBody(o, model, p, o.numPrompts + i), promptLen(p), signal)));
  if (warm.some((r) => !r.ok)) note(`warmup failed: ${warm.find((r) => !r.ok)!.error}`);
  // prom-client resets its event-loop delay histogram at each scrape: this one starts the window.
  await scrapeMetrics(client, ['nodejs_eventloop_lag_max_seconds']);
  const itl0 = await scrapeBuckets(client, 'tachyon_inter_token_latency_seconds');
  const t0 = performance.now();
  const server0 = await serverCpuS();
  const client0 = process.cpuUsage();
  // The client's own event-loop delay: a late client reads two tokens at once and reports one long ITL.
  const clientLag = monitorEventLoopDelay({ resolution: 5 });
  clientLag.enable();
  const load = await driveLoad(
    { concurrency: o.concurrency, offsetsMs: w.offsetsMs },
    (i) => sendGeneration(target, bodies[i], promptLen(w.prompts[i]), signal),
    signal,
  );
  const clientS = processCpuS(process.cpuUsage(client0));
  clientLag.disable();
  // Before any other scrape, which would reset the delay histogram.
  const [lagP99, lagMax] = await scrapeMetrics(client, ['nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds']);
  const server1 = await serverCpuS();
  const wallMs = performance.now() - t0;
  const itl1 = await scrapeBuckets(client, 'tachyon_inter_token_latency_seconds');
  return {
    name: 'HTTP',
    clientEventLoopDelayMs: { p99: clientLag.percentile(99) / 1e6, max: clientLag.max / 1e6 },
    serverItlBuckets: itl0 && itl1 ? itl1.map(([le, n], i) => [le, n - (itl0[i]?.[1] ?? 0)] as [number, number]) : null,
    eventLoopDelayMs: lagP99 === null || lagMax === null ? null : { p99: lagP99 * 1000, max: lagMax * 1000 },
    stats: runStats(load.records, load.endMs - load.startMs),
    streamed: o.stream,
    serverCores: server0 === null || server1 === null ? null : cores(server1 - server0, wallMs),
    clientCores: cores(clientS, wallMs)!,
  };
}

/** The command line as typed, quoted where a shell needs it. */
function commandLine(): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['node', 'dist/bench/serve.js', ...process.argv.slice(2)].map(q).join(' ');
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n\n${USAGE}\n`);
    return 2;
  }
  const { o, serverFlags } = parsed;
  if (o.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let config: Config | undefined;
  if (o.url === undefined) {
    try {
      // The spawned server inherits this environment, so its TACHYON_* variables count here too.
      config = loadConfig(serverFlags, process.env).config;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      process.stderr.write(`server flags: ${e.message}\n`);
      return 2;
    }
  }

  const abort = new AbortController();
  // Every request in flight listens on this one signal (thousands at --concurrency 2048).
  setMaxListeners(0, abort.signal);
  const onSignal = (signal: string) => {
    // A second Ctrl-C gives up at once; the exit hook in serve-server.ts still kills the server.
    if (abort.signal.aborted) process.exit(130);
    note(`${signal}: stopping (requests in flight are cancelled, the server is stopped)`);
    abort.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  let engine: RunReport | null = null;
  let http: RunReport | null = null;
  let device: string | null = null;
  let workload: Workload | undefined;
  if (o.engineOnly) {
    note('engine-only run: loading the model in this process');
    const model = await loadModel(config!, quietLog);
    try {
      device = model.runtime.info.deviceName || model.config.device;
      workload = await buildWorkload(o, o.vocabSize ?? model.runtime.info.vocabSize, async (text) => (await chatPromptTokens(serverDeps(model), [{ role: 'user', content: text }], true)).length);
      note(`engine-only run: ${o.numPrompts} requests`);
      engine = await engineRun(o, model, workload, abort.signal);
      process.stdout.write(formatRun(engine) + '\n\n');
    } finally {
      await model.close();
    }
  }

  let server: SpawnedServer | null = null;
  let client: HttpClient | null = null;
  try {
    if (!abort.signal.aborted) {
      if (o.url === undefined) {
        note('starting the server');
        server = await spawnServer(serverFlags, abort.signal);
        client = httpClient(server.url, o.apiKey);
      } else client = httpClient(o.url, o.apiKey);
      const pid = server?.pid;
      const serverCpuS = pid !== undefined ? async () => processCpuSeconds(pid) : () => scrapeCpuSeconds(client!);
      const { id: modelName } = await servedModel(client);
      if (workload === undefined) {
        let vocab = o.vocabSize ?? (config ? readModelConfig(config.model).vocabSize : await probeVocab(client, modelName, 20_000));
        if (vocab === null) {
          note('the server has no /detokenize to probe its vocabulary; drawing ids below 1000 (set --vocab-size)');
          vocab = 1000;
        }
        workload = await buildWorkload(o, vocab, (text) => chatTokenCount(client!, modelName, text));
      }
      note(`HTTP run: ${o.numPrompts} requests to ${client.base.origin}`);
      http = await httpRun(o, client, modelName, workload, serverCpuS, abort.signal);
      device ??= server?.device ?? null;
      process.stdout.write(formatRun(http) + '\n\n');
    }
  } finally {
    client?.agent.destroy();
    if (server) {
      note('stopping the server');
      await server.stop();
    }
  }

  const ratio = http && engine && engine.stats.outputTokPerS > 0 ? http.stats.outputTokPerS / engine.stats.outputTokPerS : null;
  if (ratio !== null) process.stdout.write(`http/engine output tok/s ratio: ${ratio.toFixed(3)}\n`);
  for (const r of [engine, http]) {
    if (r && r.stats.firstError !== null && /429|queue/i.test(r.stats.firstError))
      note(`${r.name}: requests were refused for a full queue; raise the server's --max-queue (and --max-num-seqs) above --concurrency`);
  }
  const report: BenchReport = {
    command: commandLine(),
    date: new Date().toISOString(),
    host: os.hostname(),
    device,
    workload: {
      inputLen: o.inputLen,
      outputLen: o.outputLen,
      numPrompts: o.numPrompts,
      concurrency: Number.isFinite(o.concurrency) ? o.concurrency : null,
      requestRate: Number.isFinite(o.requestRate) ? o.requestRate : null,
      rampUpS: o.rampUpS,
      stream: o.stream,
      promptKind: o.promptKind,
      temperature: o.temperature,
      seed: o.seed,
      warmup: o.warmup,
      ...workload?.describe,
    },
    http,
    engine,
    httpEngineOutputRatio: ratio,
    interrupted: abort.signal.aborted,
  };
  if (abort.signal.aborted) process.stdout.write('interrupted: the figures cover only the requests sent before the signal\n');
  if (o.markdown) process.stdout.write('\n' + formatMarkdown(report) + '\n\n');
  process.stdout.write(JSON.stringify(report) + '\n');
  if (abort.signal.aborted) return 130;
  return [engine, http].some((r) => r !== null && r.stats.completed === 0) ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    process.stderr.write(`bench:serve failed: ${(e as Error)?.message ?? e}\n`);
    process.exitCode = 1;
  },
);

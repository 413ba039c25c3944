// Guided decoding through HTTP against a running server (started as a user
// would): what json_schema costs in output tokens per second at a given
// concurrency, and what compiling a new schema adds to the first token.
//
//   node dist/bench/guided.js --url http://127.0.0.1:8000 [--concurrency 64] [--requests 128] [--max-tokens 256]
//
// Throughput is paired: the guided round runs first; the unguided round then
// sends the same prompts with max_tokens set to each guided answer's own
// length and ignore_eos, so both rounds produce the same tokens per request
// in the same order and concurrency, and differ only in the grammar.
// Compile: time to the first streamed token of a one-token answer with a
// 20-property schema never seen before, against the same request unguided
// and against the schema once cached (medians over --compile-trials).
import { parseArgs } from 'node:util';

import { httpClient, sendGeneration, servedModel, type GenerationTarget } from './serve-http.js';
import { percentile } from './serve-stats.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8000' },
    concurrency: { type: 'string', default: '64' },
    requests: { type: 'string', default: '128' },
    'max-tokens': { type: 'string', default: '256' },
    'compile-trials': { type: 'string', default: '9' },
  },
});
const concurrency = Number(values.concurrency);
const requests = Number(values.requests);
const maxTokens = Number(values['max-tokens']);
const trials = Number(values['compile-trials']);

const client = httpClient(values.url!);
const { id: model } = await servedModel(client);
const chat: GenerationTarget = { client, path: '/v1/chat/completions', stream: false };
const streamed: GenerationTarget = { client, path: '/v1/chat/completions', stream: true };

/** A record a service might return: strings bounded by the model's own quote tokens, numbers, a nested object, an array. */
const PROFILE = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    email: { type: 'string' },
    active: { type: 'boolean' },
    score: { type: 'number' },
    tags: { type: 'array', items: { type: 'string' } },
    address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string' } }, required: ['street', 'city', 'zip'] },
  },
  required: ['name', 'age', 'email', 'active', 'score', 'tags', 'address'],
};

const TYPES = ['string', 'integer', 'boolean', 'number'];
/** A 20-property schema no request has used: names carry the trial's tag. */
const twentyProperties = (tag: string) => ({
  type: 'object',
  properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`${tag}_field_${i}`, { type: TYPES[i % 4] }])),
  required: Array.from({ length: 20 }, (_, i) => `${tag}_field_${i}`),
});

const prompt = (i: number) => `Request ${i}: describe one customer of a bakery in Verona as a JSON record, with every field filled in.`;
const body = (i: number, extra: object) => JSON.stringify({ model, messages: [{ role: 'user', content: prompt(i) }], seed: i, temperature: 1, ...extra });

async function round(bodies: string[]): Promise<{ tokens: number[]; seconds: number }> {
  const tokens = new Array<number>(bodies.length).fill(0);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const i = next++;
        const rec = await sendGeneration(chat, bodies[i], 0);
        if (!rec.ok) throw new Error(`request ${i}: ${rec.error}`);
        tokens[i] = rec.completionTokens;
      }
    }),
  );
  return { tokens, seconds: (performance.now() - t0) / 1000 };
}

async function ttft(extra: object, i: number): Promise<number> {
  const rec = await sendGeneration(streamed, body(i, { max_tokens: 1, stream: true, ...extra }), 0);
  if (!rec.ok) throw new Error(rec.error);
  return rec.tokenTimes[0] - rec.start;
}

const guidedExtra = { response_format: { type: 'json_schema', json_schema: { name: 'profile', schema: PROFILE, strict: true } } };
// Warm-up: the engine's graphs and the grammar (compiled once, then cached).
await round(Array.from({ length: concurrency }, (_, i) => body(i, { max_tokens: 16, ...guidedExtra })));

const guided = await round(Array.from({ length: requests }, (_, i) => body(i, { max_tokens: maxTokens, ...guidedExtra })));
const free = await round(guided.tokens.map((n, i) => body(i, { max_tokens: Math.max(1, n), ignore_eos: true })));
const sum = (a: number[]) => a.reduce((s, x) => s + x, 0);
const gTps = sum(guided.tokens) / guided.seconds;
const fTps = sum(free.tokens) / free.seconds;

const unguidedTtft: number[] = [];
const newTtft: number[] = [];
const cachedTtft: number[] = [];
for (let t = 0; t < trials; t++) {
  unguidedTtft.push(await ttft({}, 1000 + t));
  const schema = twentyProperties(`t${Date.now().toString(36)}_${t}`);
  const extra = { response_format: { type: 'json_schema', json_schema: { name: 'twenty', schema } } };
  newTtft.push(await ttft(extra, 1000 + t));
  cachedTtft.push(await ttft(extra, 1000 + t));
}
const med = (a: number[]) => percentile(a, 50);

console.log(`| measure | value |`);
console.log(`| --- | ---: |`);
console.log(`| ${requests} json_schema requests, ${concurrency} at a time: output tok/s | ${gTps.toFixed(0)} |`);
console.log(`| the same tokens unguided: output tok/s | ${fTps.toFixed(0)} |`);
console.log(`| guided cost | ${((1 - gTps / fTps) * 100).toFixed(1)}% |`);
console.log(`| mean answer length (tokens) | ${(sum(guided.tokens) / requests).toFixed(0)} |`);
console.log(`| TTFT unguided, median of ${trials} (ms) | ${med(unguidedTtft).toFixed(1)} |`);
console.log(`| TTFT with a new 20-property schema (ms) | ${med(newTtft).toFixed(1)} |`);
console.log(`| TTFT with that schema cached (ms) | ${med(cachedTtft).toFixed(1)} |`);
console.log(`| compile adds to the first token (ms) | ${(med(newTtft) - med(unguidedTtft)).toFixed(1)} |`);
console.log(`| cached adds (ms) | ${(med(cachedTtft) - med(unguidedTtft)).toFixed(1)} |`);

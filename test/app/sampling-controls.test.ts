// Penalties, logit_bias and min_tokens through HTTP on the default model,
// shown to move the output the way they are meant to, not only accepted.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.shutdown(1000));

const MODEL = 'tiny-shakespeare';
const PROMPT = 'KING RICHARD:\nNow is the winter of our discontent';

interface Out {
  text: string;
  tokens: string[];
  finish: string;
  completionTokens: number;
}

/** ignore_eos: the default model often ends a line with its end token, and these measures need long outputs. */
async function complete(extra: object, maxTokens = 80): Promise<Out> {
  const r = await postJson(`${server.url}/v1/completions`, { model: MODEL, prompt: PROMPT, max_tokens: maxTokens, logprobs: 0, ignore_eos: true, ...extra });
  assert.equal(r.status, 200, await r.clone().text());
  const j = (await r.json()) as { choices: { text: string; finish_reason: string; logprobs: { tokens: string[] } }[]; usage: { completion_tokens: number } };
  return { text: j.choices[0].text, tokens: j.choices[0].logprobs.tokens, finish: j.choices[0].finish_reason, completionTokens: j.usage.completion_tokens };
}

async function tokenIds(text: string): Promise<number[]> {
  const r = await postJson(`${server.url}/tokenize`, { model: MODEL, prompt: text });
  return ((await r.json()) as { tokens: number[] }).tokens;
}

/** Tokens that repeat one seen earlier in the output, as a fraction of all. */
function repetition(tokens: string[]): number {
  return 1 - new Set(tokens).size / tokens.length;
}

/** Mean over seeds of f(output). */
async function mean(extra: object, f: (o: Out) => number, seeds = [1, 2, 3, 4]): Promise<number> {
  let sum = 0;
  for (const seed of seeds) sum += f(await complete({ ...extra, seed }));
  return sum / seeds.length;
}

test('logit_bias +100 makes a token all but certain; -100 bans the greedy choice', async () => {
  const [thee] = await tokenIds(' thee');
  const forced = await complete({ logit_bias: { [thee]: 100 }, seed: 1 }, 12);
  assert.deepEqual(forced.tokens, Array(12).fill(' thee'));
  const greedy = await complete({ temperature: 0 }, 30);
  const first = (await tokenIds(greedy.tokens[0]))[0];
  const banned = await complete({ temperature: 0, logit_bias: { [first]: -100 } }, 30);
  assert.notEqual(banned.tokens[0], greedy.tokens[0]);
  assert.ok(!banned.tokens.includes(greedy.tokens[0]), `banned token ${JSON.stringify(greedy.tokens[0])} appeared`);
});

test('frequency_penalty and presence_penalty lower repetition; a negative frequency_penalty raises it', async () => {
  const base = await mean({ temperature: 0.7 }, (o) => repetition(o.tokens));
  const freq = await mean({ temperature: 0.7, frequency_penalty: 1.5 }, (o) => repetition(o.tokens));
  const pres = await mean({ temperature: 0.7, presence_penalty: 1.5 }, (o) => repetition(o.tokens));
  const neg = await mean({ temperature: 0.7, frequency_penalty: -1.5 }, (o) => repetition(o.tokens));
  assert.ok(freq < base - 0.05, `frequency_penalty: ${freq} vs ${base}`);
  assert.ok(pres < base - 0.05, `presence_penalty: ${pres} vs ${base}`);
  assert.ok(neg > base + 0.05, `negative frequency_penalty: ${neg} vs ${base}`);
});

test('repetition_penalty above 1 lowers repetition, greedy, and also counts prompt tokens', async () => {
  const base = repetition((await complete({ temperature: 0 })).tokens);
  const penalized = repetition((await complete({ temperature: 0, repetition_penalty: 1.6 })).tokens);
  assert.ok(penalized < base - 0.05, `${penalized} vs ${base}`);
  // The prompt's own words are penalized too: the greedy answer avoids more of them.
  const promptTokens = new Set((await tokenIds(PROMPT)).map(String));
  const inPrompt = async (extra: object) => {
    const o = await complete({ temperature: 0, ...extra }, 40);
    const ids = await tokenIds(o.text);
    return ids.filter((id) => promptTokens.has(String(id))).length / ids.length;
  };
  assert.ok((await inPrompt({ repetition_penalty: 1.8 })) < (await inPrompt({})));
});

test('the same seed with penalties gives the same text; penalties leave returned logprobs raw', async () => {
  const a = await complete({ seed: 11, frequency_penalty: 1, presence_penalty: 0.5 });
  const b = await complete({ seed: 11, frequency_penalty: 1, presence_penalty: 0.5 });
  assert.equal(a.text, b.text);
});

test('min_tokens holds off a stop token until that many tokens are out', async () => {
  const [newline] = await tokenIds('\n');
  const early = await complete({ temperature: 0, stop_token_ids: [newline] }, 100);
  assert.equal(early.finish, 'stop');
  assert.ok(early.completionTokens < 20, `stopped after ${early.completionTokens}`);
  const held = await complete({ temperature: 0, stop_token_ids: [newline], min_tokens: 40 }, 100);
  assert.ok(held.completionTokens >= 40, `stopped after ${held.completionTokens}`);
  assert.ok(!held.tokens.slice(0, 39).includes('\n'), 'the stop token came before min_tokens');
});

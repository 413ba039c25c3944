// vLLM's request extensions for stopping and detokenizing: stop_token_ids,
// include_stop_str_in_output, skip_special_tokens.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.shutdown(1000));

interface Completion { choices: { text: string; finish_reason: string; stop_reason: string | number | null }[]; usage: { completion_tokens: number } }
const complete = async (extra: Record<string, unknown>) => {
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 60, temperature: 0, ...extra });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as Completion).choices[0];
};

test('stop_token_ids end generation at that token, which is reported as the stop_reason and adds no text', async () => {
  const free = (await complete({ logprobs: 0 })) as unknown as { text: string; logprobs: { tokens: string[] } };
  const tok = server.deps.tokenizers.tokenizer;
  // The fourth generated token, as an id (a byte-level token's text encodes back to itself).
  const piece = free.logprobs.tokens[3];
  const ids = tok.encode(piece, { addSpecialTokens: false });
  assert.equal(ids.length, 1);
  const first = free.logprobs.tokens.indexOf(piece);
  const stopped = await complete({ stop_token_ids: ids });
  assert.deepEqual([stopped.finish_reason, stopped.stop_reason], ['stop', ids[0]]);
  assert.equal(stopped.text, free.logprobs.tokens.slice(0, first).join(''));
  // include_stop_str_in_output shows the stop token's own text, as vLLM does.
  const shown = await complete({ stop_token_ids: ids, include_stop_str_in_output: true });
  assert.equal(shown.text, stopped.text + piece);
  // Text held back for a possible stop string is released when a stop token ends the request.
  const held = await complete({ stop_token_ids: ids, stop: [free.logprobs.tokens[first - 1] + 'QQQQ'] });
  assert.equal(held.text, stopped.text);
  const bad = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'x', stop_token_ids: [5, 99999] });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'stop_token_ids[1]');
});

test('include_stop_str_in_output keeps the matched stop string, streamed and not', async () => {
  const free = await complete({});
  const stop = free.text.slice(8, 11);
  const without = await complete({ stop: [stop] });
  const kept = await complete({ stop: [stop], include_stop_str_in_output: true });
  assert.equal(kept.text, without.text + stop);
  assert.equal(kept.stop_reason, stop);
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 60, temperature: 0, stop: [stop], include_stop_str_in_output: true, stream: true });
  const streamed = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)).choices[0]?.text ?? '').join('');
  assert.equal(streamed, kept.text);
});

test('skip_special_tokens: false shows special tokens generated past EOS; the default leaves them out', async () => {
  const chat = async (skip?: boolean) => {
    const res = await postJson(`${server.url}/v1/chat/completions`, {
      model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'Good morrow.' }], max_tokens: 120, temperature: 0, ignore_eos: true, ...(skip === undefined ? {} : { skip_special_tokens: skip }),
    });
    return ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content;
  };
  const shown = await chat(false);
  assert.match(shown, /<\|im_end\|>|<\|end_of_text\|>/);
  const hidden = await chat();
  assert.doesNotMatch(hidden, /<\|im_end\|>|<\|end_of_text\|>/);
  assert.equal(hidden, shown.replace(/<\|im_end\|>|<\|end_of_text\|>/g, ''));
});

test('logit_bias: +100 forces a token, -100 bans one, through the API (CPU backend)', async () => {
  const free = (await complete({ logprobs: 0, max_tokens: 8 })) as unknown as { text: string; logprobs: { tokens: string[] } };
  const tok = server.deps.tokenizers.tokenizer;
  const firstId = tok.encode(free.logprobs.tokens[0], { addSpecialTokens: false })[0];
  const banned = (await complete({ logprobs: 0, max_tokens: 8, logit_bias: { [firstId]: -100 } })) as unknown as { logprobs: { tokens: string[] } };
  assert.notEqual(banned.logprobs.tokens[0], free.logprobs.tokens[0]);
  const e = tok.encode('e', { addSpecialTokens: false })[0];
  const forced = await complete({ max_tokens: 8, logit_bias: { [e]: 250 } });
  assert.equal(forced.text, 'eeeeeeee', 'a bias beyond 100 is clamped, and 100 still wins');
});

test('min_tokens: EOS and stop token ids are never sampled, and stop strings never match, before that many tokens', async () => {
  const free = (await complete({ logprobs: 0, max_tokens: 30 })) as unknown as { text: string; logprobs: { tokens: string[] } };
  const tok = server.deps.tokenizers.tokenizer;
  const stopId = tok.encode(free.logprobs.tokens[1], { addSpecialTokens: false })[0];
  const early = await complete({ max_tokens: 30, stop_token_ids: [stopId] });
  assert.equal(early.stop_reason, stopId);
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 30, temperature: 0, stop_token_ids: [stopId], min_tokens: 12 });
  const held = (await res.json()) as Completion;
  assert.ok(held.usage.completion_tokens >= 12, `${held.usage.completion_tokens} tokens`);
  // A stop string found in the first tokens only ends generation once min_tokens are out.
  const stop = free.text.slice(0, 3);
  const text = (await complete({ max_tokens: 30, stop: [stop], min_tokens: 10 })).text;
  assert.ok(text.length > 3, 'the early stop string did not end it');
  // EOS: a chat turn ends early by itself; with min_tokens it cannot.
  const chat = async (extra: Record<string, unknown>) =>
    ((await (await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'Good morrow.' }], max_tokens: 200, temperature: 0, ...extra })).json()) as Completion).usage.completion_tokens;
  const natural = await chat({});
  assert.ok(natural < 150, `the model ends its turn by itself (${natural} tokens)`);
  assert.ok((await chat({ min_tokens: natural + 20 })) >= natural + 20);
  const tooMany = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'x', max_tokens: 5, min_tokens: 6 });
  assert.equal(tooMany.status, 400);
  assert.equal(((await tooMany.json()) as { error: { param: string } }).error.param, 'min_tokens');
});

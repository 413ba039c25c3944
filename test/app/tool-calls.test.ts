// Tool calling end to end: the real app and engine over a runtime whose output
// is scripted text, read back through the official openai package.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { serve, type ServerType } from '@hono/node-server';
import OpenAI from 'openai';

import { createApp } from '../../app/app.js';
import { lazyGrammars, responseStoreOf, type ServerDeps } from '../../app/deps.js';
import { Metrics } from '../../app/metrics.js';
import { ConfigSchema, resolveConfig } from '../../config/schema.js';
import { Engine } from '../../engine/engine.js';
import type { StepRuntime } from '../../engine/types.js';
import { packageRoot } from '../../native/binding.js';
import type { StepBatch, StepResult } from '../../native/index.js';
import { ChatTemplate } from '../../tokenizers/chat-template.js';
import { TokenizerService } from '../../tokenizers/tokenizer-service.js';
import { openaiClientOf, postJson, quiet } from '../helpers/server.js';
import { TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

const HERMES = join(packageRoot(), '..', 'shared', 'data', 'chat-templates', 'hermes-tools.jinja');
/** Used when ../shared is absent: enough of Hermes to carry tools, calls and tool results. */
const MINIMAL =
  "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls is defined %}{% for c in m.tool_calls %}<tool_call>\n{{ c.function | tojson }}\n</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}" +
  '{% if tools is defined %}tools: {{ tools | tojson }}{% endif %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';

/** Answers every sampling row with the next token of the script, then EOS: one request at a time. */
class ScriptedRuntime implements StepRuntime {
  script: number[] = [];
  private next = 0;
  constructor(
    readonly info: StepRuntime['info'],
    private readonly eos: number,
  ) {}
  say(ids: number[]): void {
    this.script = ids;
    this.next = 0;
  }
  async step(b: StepBatch): Promise<StepResult> {
    const S = b.queryLens.length;
    const tokens = new Int32Array(S).fill(-1);
    for (let s = 0; s < S; s++) if (b.sample[s]) tokens[s] = this.next < this.script.length ? this.script[this.next++] : this.eos;
    return { tokens, logprobs: new Float32Array(S), topN: 0, topIds: new Int32Array(0), topLogprobs: new Float32Array(0) };
  }
}

let tokenizers: TokenizerService;
let runtime: ScriptedRuntime;
let http: ServerType;
let client: OpenAI;
let base: string;
let renderedPrompts: string[] = [];

before(async () => {
  tokenizers = await TokenizerService.create({ dir: join(TOKENIZERS_DIR, 'bytelevel-gpt2') }, { workers: 0 });
  const tok = tokenizers.tokenizer;
  assert.ok(tok.special.eos.length > 0, 'the fixture tokenizer has an EOS token');
  const info = { numBlocks: 512, blockSize: 16, maxPositions: 4096, vocabSize: tok.vocabSize, maxNumTokens: 4096, maxNumSeqs: 8 };
  runtime = new ScriptedRuntime(info, tok.special.eos[0]);
  const config = resolveConfig(ConfigSchema.parse({ port: 0 }));
  const engine = new Engine(runtime, tok, { maxNumBatchedTokens: 4096, maxNumSeqs: 8 });
  const template = new ChatTemplate(existsSync(HERMES) ? readFileSync(HERMES, 'utf8') : MINIMAL);
  const render = template.render.bind(template);
  template.render = (o) => {
    const text = render(o);
    renderedPrompts.push(text);
    return text;
  };
  const deps: ServerDeps = {
    config, modelName: 'scripted', maxModelLen: info.maxPositions, engine, tokenizers, chatTemplate: template,
    metrics: new Metrics(engine), state: { ready: true, draining: false, inFlight: 0 }, created: 0, grammars: lazyGrammars(tok, engine), responses: responseStoreOf(config),
  };
  http = serve({ fetch: createApp(deps, quiet).fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => http.once('listening', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  client = openaiClientOf({ url: base });
});
after(async () => {
  http.close();
  await tokenizers.close();
});

const tools: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city', parameters: { type: 'object', properties: { city: { type: 'string', description: 'the city' } }, required: ['city'] } } },
];
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris and Rome?' }];
const SCRIPT = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>';

function say(text: string): void {
  runtime.say(tokenizers.tokenizer.encode(text));
}

describe('tool calls', () => {
  test('non-streamed: message.tool_calls, finish_reason tool_calls, tools rendered into the prompt', async () => {
    say(SCRIPT);
    renderedPrompts = [];
    const r = await client.chat.completions.create({ model: 'scripted', messages, tools, max_tokens: 200 });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, 'Checking.');
    const calls = c.message.tool_calls!.map((t) => (t.type === 'function' ? [t.function.name, JSON.parse(t.function.arguments)] : null));
    assert.deepEqual(calls, [['get_weather', { city: 'Paris' }], ['get_weather', { city: 'Rome' }]]);
    for (const t of c.message.tool_calls!) assert.match(t.id, /^call_[0-9a-f]{24}$/);
    assert.match(renderedPrompts[0], /get_weather/);
  });

  test('streamed: calls assemble by index; the closing chunk says tool_calls; markup never reaches content', async () => {
    say(SCRIPT);
    const stream = await client.chat.completions.create({ model: 'scripted', messages, tools, max_tokens: 200, stream: true });
    let content = '';
    let finish: string | null = null;
    const calls: { id?: string; name: string; arguments: string }[] = [];
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        content += ch.delta.content ?? '';
        finish = ch.finish_reason ?? finish;
        for (const t of ch.delta.tool_calls ?? []) {
          calls[t.index] ??= { name: '', arguments: '' };
          if (t.id) calls[t.index].id = t.id;
          calls[t.index].name += t.function?.name ?? '';
          calls[t.index].arguments += t.function?.arguments ?? '';
        }
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(content, 'Checking.');
    assert.deepEqual(calls.map((c) => [c.name, JSON.parse(c.arguments)]), [['get_weather', { city: 'Paris' }], ['get_weather', { city: 'Rome' }]]);
    assert.ok(calls.every((c) => c.id?.startsWith('call_')));
    // The SDK's own accumulator agrees.
    say(SCRIPT);
    const final = await client.chat.completions.stream({ model: 'scripted', messages, tools, max_tokens: 200 }).finalChatCompletion();
    assert.equal(final.choices[0].message.tool_calls?.length, 2);
  });

  test('a follow-up turn with the calls and their results renders and runs', async () => {
    say('Paris 21, Rome 25.');
    renderedPrompts = [];
    const r = await client.chat.completions.create({
      model: 'scripted',
      tools,
      max_tokens: 50,
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
      ],
    });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.content, 'Paris 21, Rome 25.');
    assert.equal(r.choices[0].message.tool_calls, undefined);
    assert.match(renderedPrompts[0], /<tool_call>\n\{"name": "get_weather"/);
    assert.match(renderedPrompts[0], /"city": "Paris"/, 'arguments rendered as an object, not a quoted string');
    assert.match(renderedPrompts[0], /\{"temp": 21\}/);
  });

  test("tool_choice 'none' renders the tools but parses nothing; no tools: text as generated", async () => {
    say(SCRIPT);
    const none = await client.chat.completions.create({ model: 'scripted', messages, tools, tool_choice: 'none', max_tokens: 200 });
    assert.equal(none.choices[0].message.content, SCRIPT);
    assert.equal(none.choices[0].finish_reason, 'stop');
    say(SCRIPT);
    const plain = await client.chat.completions.create({ model: 'scripted', messages, max_tokens: 200 });
    assert.equal(plain.choices[0].message.content, SCRIPT);
  });

  test('tool_choice naming a function not among tools is a 400 naming tool_choice', async () => {
    const ask = (tool_choice: unknown) => postJson(`${base}/v1/chat/completions`, { model: 'scripted', messages, tools, tool_choice, max_tokens: 5 });
    const res = await ask({ type: 'function', function: { name: 'nope' } });
    assert.equal(res.status, 400);
    const e = ((await res.json()) as { error: { param: string; message: string } }).error;
    assert.equal(e.param, 'tool_choice');
    assert.match(e.message, /'nope', which is not among tools/);
    say('ok');
    assert.equal((await ask('auto')).status, 200);
  });

  test('/tokenize takes the same messages and tools', async () => {
    const res = await postJson(`${base}/tokenize`, {
      messages: [...messages, { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'get_weather', arguments: 'not json' } }] }, { role: 'tool', tool_call_id: 'c', content: 'x' }],
      tools,
    });
    assert.equal(res.status, 200);
    assert.ok(((await res.json()) as { count: number }).count > 0);
  });
});

// OpenAI-shaped tool history and tools, converted as the chat route converts
// them, render through the real templates exactly as transformers renders the
// same conversation (test/fixtures/tokenizers/chat-templates.expected.json).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { templateMessage, templateTools } from '../../app/prompts.js';
import { ChatRequest, type ChatMessageIn } from '../../app/schemas.js';
import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { packageRoot } from '../../native/binding.js';
import { ChatTemplate } from '../../tokenizers/chat-template.js';
import { postJson, startTestServer } from '../helpers/server.js';
import { TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

const TEMPLATES = join(packageRoot(), '..', 'shared', 'data', 'chat-templates');
const expected = JSON.parse(readFileSync(join(TOKENIZERS_DIR, 'chat-templates.expected.json'), 'utf8'));

/** The fixture's tool-call conversation as an OpenAI client sends it: content null, arguments as JSON text. */
const openaiMessages = [
  { role: 'user', content: 'What is the weather in Paris?' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'abcDEF123', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "celsius"}' } }] },
  { role: 'tool', tool_call_id: 'abcDEF123', name: 'get_weather', content: '{"temp": 21}' },
];

test('the request schema takes tools, tool_choice and tool history', () => {
  const body = ChatRequest.parse({ model: 'm', messages: openaiMessages, tools: expected.tools, tool_choice: 'auto', parallel_tool_calls: true });
  assert.equal(body.tools?.length, 1);
  assert.equal(ChatRequest.safeParse({ model: 'm', messages: [{ role: 'tool', content: 'x' }] }).success, false, 'a tool message needs tool_call_id');
  assert.equal(ChatRequest.safeParse({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: {} }] }).success, false);
});

test('arguments that are not JSON reach the template as text', () => {
  const m = templateMessage({ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{oops' } }] });
  assert.deepEqual(m, { role: 'assistant', content: '', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{oops' } }] });
  assert.ok(!('tool_calls' in templateMessage({ role: 'assistant', content: 'hi', tool_calls: [] })), 'an empty list is left out');
});

describe('tool history renders as transformers renders it', { skip: existsSync(TEMPLATES) ? false : `no ${TEMPLATES} (templates live in the shared data folder)` }, () => {
  const now = new Date(expected.rendered_at.slice(0, 19));
  const messages = ChatRequest.parse({ model: 'm', messages: openaiMessages }).messages as ChatMessageIn[];
  for (const c of expected.cases.filter((c: { conversation: string }) => c.conversation === 'tool-call')) {
    test(`${c.template}${c.tools ? ' + tools' : ''} / generation prompt ${c.add_generation_prompt ? 'on' : 'off'}`, () => {
      const template = new ChatTemplate(readFileSync(join(TEMPLATES, c.template), 'utf8'));
      const render = () =>
        template.render({
          messages: messages.map(templateMessage),
          tools: c.tools ? templateTools(expected.tools) : null,
          addGenerationPrompt: c.add_generation_prompt,
          bosToken: c.bos_token,
          eosToken: c.eos_token,
          now,
        });
      if (c.error) assert.throws(render);
      else assert.equal(render(), c.rendered);
    });
  }
});

test('a tokenizer_config that names a "tool_use" template: requests with tools render it, others the default', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tachyon-tool-use-'));
  try {
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']) symlinkSync(join(DEFAULT_MODEL_DIR, f), join(dir, f));
    const config = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    config.chat_template = [
      { name: 'default', template: 'DEFAULT {% for m in messages %}{{ m.content }}{% endfor %}' },
      { name: 'tool_use', template: 'TOOLS {{ tools | length }} <tool_call> {% for m in messages %}{{ m.content }}{% endfor %}' },
    ];
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const server = await startTestServer({ model: dir });
    try {
      const render = async (extra: Record<string, unknown>) => {
        const r = (await (await postJson(`${server.url}/tokenize`, { messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: false, ...extra })).json()) as { tokens: number[] };
        return server.deps.tokenizers.tokenizer.decode(r.tokens);
      };
      assert.match(await render({}), /^DEFAULT hi$/);
      assert.match(await render({ tools: [{ type: 'function', function: { name: 'f' } }] }), /^TOOLS 1 <tool_call> hi$/);
      // The tool template's format decides the parser: it teaches <tool_call>, so hermes.
      assert.equal(server.deps.toolChatTemplate?.source.includes('<tool_call>'), true);
    } finally {
      await server.shutdown(1000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Chat templates rendered as transformers' apply_chat_template renders them.
// Templates: ../shared/data/chat-templates; expected output:
// test/fixtures/tokenizers/chat-templates.expected.json (test/tokenizers/make_fixtures.py).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { packageRoot } from '../../native/binding.js';
import { ChatTemplate, ChatTemplateError, chatTemplateSource, type ChatMessage } from '../../tokenizers/chat-template.js';
import { TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

const TEMPLATES = join(packageRoot(), '..', 'shared', 'data', 'chat-templates');
const expected = JSON.parse(readFileSync(join(TOKENIZERS_DIR, 'chat-templates.expected.json'), 'utf8'));

describe('chat templates match transformers', { skip: existsSync(TEMPLATES) ? false : `no ${TEMPLATES} (templates live in the shared data folder)` }, () => {
  const now = new Date(expected.rendered_at.slice(0, 19));
  for (const c of expected.cases) {
    const name = `${c.template} / ${c.conversation}${c.tools ? ' + tools' : ''} / generation prompt ${c.add_generation_prompt ? 'on' : 'off'}`;
    test(name, () => {
      const template = new ChatTemplate(readFileSync(join(TEMPLATES, c.template), 'utf8'));
      const render = () =>
        template.render({
          messages: expected.conversations[c.conversation] as ChatMessage[],
          tools: c.tools ? expected.tools : null,
          addGenerationPrompt: c.add_generation_prompt,
          bosToken: c.bos_token,
          eosToken: c.eos_token,
          now,
        });
      if (c.error) assert.throws(render, ChatTemplateError);
      else assert.equal(render(), c.rendered);
    });
  }
});

test('raise_exception in a template is a ChatTemplateError carrying its message', () => {
  const t = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok");
  assert.equal(t.render({ messages: [{ role: 'user', content: 'hi' }] }), 'ok');
  assert.throws(() => t.render({ messages: [{ role: 'system', content: 'x' }] }), { name: 'Error', message: 'first message must be from the user' });
});

test('a template that fails at render time is a ChatTemplateError, not a crash', () => {
  const t = new ChatTemplate('{{ messages[0].content.upper() }}{{ undefined_fn() }}');
  assert.throws(() => t.render({ messages: [{ role: 'user', content: 'x' }] }), ChatTemplateError);
});

test('a template that does not parse is refused at load', () => {
  assert.throws(() => new ChatTemplate('{% if %}'), /chat template does not parse/);
});

test('strftime_now formats the given clock like Python', () => {
  const t = new ChatTemplate('{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%A %B %-d") }}');
  assert.equal(t.render({ messages: [], now: new Date(2024, 6, 5) }), '05 Jul 2024|Friday July %-d');
});

test('a named template list picks tool_use when tools are given, else default', () => {
  const config = { chat_template: [{ name: 'default', template: 'D' }, { name: 'tool_use', template: 'T' }] };
  assert.equal(chatTemplateSource(config), 'D');
  assert.equal(chatTemplateSource(config, true), 'T');
  assert.equal(chatTemplateSource({ chat_template: 'S' }, true), 'S');
  assert.equal(chatTemplateSource({}), null);
});

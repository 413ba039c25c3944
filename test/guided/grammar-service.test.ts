// Guided decoding's grammar side, against real tokenizers: what a matcher
// allows, walked token by token as a sampler would, always decodes to text
// the spec accepts; bad specs are refused with the engine's reason.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { Ajv } from 'ajv';

import { packageRoot } from '../../native/binding.js';
import { GrammarService } from '../../guided/grammar-service.js';
import { GuideError, type GuideSpec } from '../../guided/spec.js';
import { loadTokenizer, type Tokenizer } from '../../tokenizers/tokenizer.js';
import { TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';
import { allowedTokens, walk } from '../helpers/grammar-walk.js';

const DEFAULT_MODEL = join(packageRoot(), 'models', 'tiny-shakespeare');

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' }, pets: { type: 'array', items: { enum: ['cat', 'dog'] }, maxItems: 3 }, ok: { type: 'boolean' } },
  required: ['name', 'age', 'pets', 'ok'],
  additionalProperties: false,
};

describe('GrammarService on the default model (byte-level BPE, 1024 tokens)', () => {
  let tokenizer: Tokenizer;
  let service: GrammarService;
  before(async () => {
    tokenizer = loadTokenizer(DEFAULT_MODEL);
    // One more row than the tokenizer has: ids past it must never be allowed.
    service = await GrammarService.create(tokenizer, tokenizer.vocabSize + 40);
    await service.warmUp();
  });

  test('random walks through a JSON schema decode to JSON that validates, and end on the stop token', async () => {
    const validate = new Ajv().compile(PERSON);
    for (let seed = 1; seed <= 20; seed++) {
      const { text, terminated } = await walk(service, tokenizer, { kind: 'json_schema', schema: PERSON }, seed);
      assert.ok(terminated, `seed ${seed}: the walk did not finish: ${text}`);
      const value = JSON.parse(text);
      assert.ok(validate(value), `seed ${seed}: ${text}: ${JSON.stringify(validate.errors)}`);
    }
  });

  test('json_object: any JSON object', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const { text, terminated } = await walk(service, tokenizer, { kind: 'json_object' }, seed, 400);
      if (!terminated) continue; // an object of unbounded size may not finish in 400 tokens
      const value = JSON.parse(text);
      assert.equal(typeof value, 'object', text);
      assert.ok(value !== null && !Array.isArray(value), text);
    }
  });

  test('regex, choice and an EBNF grammar', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = await walk(service, tokenizer, { kind: 'regex', pattern: '[0-9]{3}-(yes|no)' }, seed);
      assert.match(r.text, /^[0-9]{3}-(yes|no)$/);
      const c = await walk(service, tokenizer, { kind: 'choice', choices: ['To be', 'not to be', 'ay, there\'s the "rub"'] }, seed);
      assert.ok(['To be', 'not to be', 'ay, there\'s the "rub"'].includes(c.text), c.text);
      const g = await walk(service, tokenizer, { kind: 'grammar', ebnf: 'root ::= "(" num (" + " num)* ")"\nnum ::= [1-9] [0-9]?' }, seed, 200);
      if (g.terminated) assert.match(g.text, /^\([1-9][0-9]?( \+ [1-9][0-9]?)*\)$/);
    }
  });

  test('special tokens other than the stop tokens, and ids past the tokenizer, are never allowed', async () => {
    const guide = await service.guide({ kind: 'json_object' });
    const allowed = allowedTokens(guide, service.vocab.vocabSize);
    guide.dispose();
    for (const id of allowed) {
      assert.ok(id < tokenizer.vocabSize, `id ${id} is past the tokenizer`);
      assert.ok(!tokenizer.isSpecial(id), `special token ${id} allowed`);
    }
    assert.ok(allowed.length > 0);
  });

  test('an invalid schema, regex or grammar is a GuideError with the engine\'s reason', async () => {
    const bad: [GuideSpec, RegExp][] = [
      [{ kind: 'json_schema', schema: { type: 'nope' } }, /Unsupported type "nope"/],
      [{ kind: 'json_schema', schema: { type: 'object', properties: { a: { $ref: '#/$defs/missing' } } } }, /missing|\$defs|ref/i],
      [{ kind: 'regex', pattern: '(ab' }, /parenthesis/i],
      [{ kind: 'grammar', ebnf: 'root ::= "a" |' }, /EBNF/],
    ];
    for (const [spec, reason] of bad) await assert.rejects(service.guide(spec), (e: unknown) => e instanceof GuideError && reason.test(e.message));
  });

  test('many refused specs in a row leave the service working (each refusal is taken by a disposable engine)', async () => {
    for (let i = 0; i < 40; i++) await assert.rejects(service.guide({ kind: 'json_schema', schema: { type: `bad${i}` } }), GuideError);
    const { text, terminated } = await walk(service, tokenizer, { kind: 'json_schema', schema: PERSON }, 7);
    assert.ok(terminated);
    assert.ok(new Ajv().compile(PERSON)(JSON.parse(text)));
  });

  test('a spec is compiled once: the same schema with its keys in another order is found in the cache', async () => {
    const schema = { type: 'object', properties: { x: { type: 'integer' }, y: { type: 'boolean' } }, required: ['x', 'y'] };
    (await service.guide({ kind: 'json_schema', schema })).dispose();
    assert.equal(service.lastCompile?.cached, false);
    (await service.guide({ kind: 'json_schema', schema: { required: ['x', 'y'], properties: { y: { type: 'boolean' }, x: { type: 'integer' } }, type: 'object' } })).dispose();
    assert.equal(service.lastCompile?.cached, true);
  });
});

test('a SentencePiece tokenizer (▁ and <0x..> byte tokens) decodes through the guide to what the regex allows', async () => {
  const tokenizer = loadTokenizer(join(TOKENIZERS_DIR, 'spbpe-legacy'));
  const service = await GrammarService.create(tokenizer, tokenizer.vocabSize);
  for (let seed = 1; seed <= 10; seed++) {
    const { text, terminated } = await walk(service, tokenizer, { kind: 'regex', pattern: '[a-z]+ [a-z]+\n' }, seed, 200);
    assert.ok(terminated, text);
    assert.match(text, /^[a-z]+ [a-z]+\n$/);
  }
});

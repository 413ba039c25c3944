// Token ids and decodes against HF tokenizers on the same tokenizer.json.
// Fixtures: test/tokenizers/make_fixtures.py.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { loadTokenizer, type Tokenizer } from '../../tokenizers/tokenizer.js';
import { expectedLines, TOKENIZER_FIXTURES, TOKENIZERS_DIR, type ExpectedLine } from '../helpers/tokenizer-fixtures.js';

const ENGINES: Record<string, 'tiktoken' | 'bpe'> = {
  'bytelevel-trained': 'bpe', // HF-trained merges that tiktoken ranks cannot reproduce
  'bytelevel-ranked': 'tiktoken',
  'bytelevel-gpt2': 'tiktoken',
  'spbpe-legacy': 'bpe',
  'spbpe-metaspace': 'bpe',
  cl100k: 'tiktoken',
};

for (const name of TOKENIZER_FIXTURES) {
  describe(`tokenizer parity with HF: ${name}`, () => {
    let tok: Tokenizer;
    let lines: ExpectedLine[];
    before(() => {
      tok = loadTokenizer(join(TOKENIZERS_DIR, name));
      lines = expectedLines(name);
    });
    after(() => tok.free());

    test(`runs on ${ENGINES[name]}`, () => assert.equal(tok.engine, ENGINES[name]));

    test('ids match with special-token text parsed (HF default)', () => {
      for (const l of lines) assert.deepEqual(tok.encode(l.text, { parseSpecialTokens: true }), l.ids, JSON.stringify(l.text));
    });

    test('ids match with special-token text left as text (our default)', () => {
      for (const l of lines) assert.deepEqual(tok.encode(l.text), l.ids_special_as_text, JSON.stringify(l.text));
    });

    test("ids match with the post-processor's special tokens added", () => {
      for (const l of lines)
        assert.deepEqual(tok.encode(l.text, { addSpecialTokens: true, parseSpecialTokens: true }), l.ids_with_special, JSON.stringify(l.text));
    });

    test('decode matches HF, with and without special tokens', () => {
      for (const l of lines) {
        assert.equal(tok.decode(l.ids), l.decoded, JSON.stringify(l.text));
        assert.equal(tok.decode(l.ids, { skipSpecialTokens: true }), l.decoded_skip_special, JSON.stringify(l.text));
      }
    });
  });
}

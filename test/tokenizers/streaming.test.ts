// Streaming detokenization: pieces concatenate to the full decode and never
// split a character.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { IncrementalDetokenizer } from '../../tokenizers/incremental-detokenizer.js';
import { loadTokenizer } from '../../tokenizers/tokenizer.js';
import { expectedLines, TOKENIZER_FIXTURES, TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(++i);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

for (const name of TOKENIZER_FIXTURES) {
  describe(`streaming decode: ${name}`, () => {
    const tok = loadTokenizer(join(TOKENIZERS_DIR, name));
    const lines = expectedLines(name);

    test('one token at a time, the pieces add up to the full decode', () => {
      for (const l of lines) {
        for (const skipSpecialTokens of [false, true]) {
          const d = new IncrementalDetokenizer(tok, { skipSpecialTokens });
          const pieces = l.ids.map((id) => d.push(id));
          pieces.push(d.flush());
          assert.equal(pieces.join(''), tok.decode(l.ids, { skipSpecialTokens }), JSON.stringify(l.text));
          for (const p of pieces) {
            assert.ok(isWellFormed(p), `piece splits a surrogate pair in ${JSON.stringify(l.text)}`);
            if (!l.decoded.includes('\uFFFD')) assert.ok(!p.includes('\uFFFD'), `U+FFFD mid-stream in ${JSON.stringify(l.text)}`);
          }
        }
      }
    });

    test('after a prompt, the first piece reads as a continuation', () => {
      for (const l of lines.filter((x) => x.ids.length > 4)) {
        const split = Math.floor(l.ids.length / 2);
        const d = new IncrementalDetokenizer(tok, {}, l.ids.slice(0, split));
        const rest = l.ids.slice(split).map((id) => d.push(id)).join('') + d.flush();
        const whole = tok.decode(l.ids);
        const head = tok.decode(l.ids.slice(0, split));
        if (!whole.startsWith(head)) continue; // a head ending inside a character decodes differently alone
        assert.equal(head + rest, whole, JSON.stringify(l.text));
      }
    });
  });
}

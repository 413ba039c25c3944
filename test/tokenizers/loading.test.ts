// Loading choices: which engine runs a tokenizer, named tiktoken encodings,
// special tokens from the config files, and refusals that name the problem.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { loadNamedEncoding } from '../../tokenizers/named-encodings.js';
import { loadTokenizer, tokenizerFromJson } from '../../tokenizers/tokenizer.js';
import { expectedLines, TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tachyon-tok-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

const json = (name: string) => JSON.parse(readFileSync(join(TOKENIZERS_DIR, name, 'tokenizer.json'), 'utf8'));

test('merges tiktoken cannot reproduce are detected; forcing tiktoken is refused with the reason', () => {
  assert.throws(
    () => loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-trained'), 'tiktoken'),
    /tokenizer merges cannot be expressed as tiktoken ranks: token \d+ can be formed from tokens \d+ \+ \d+, which is not a merge rule/,
  );
  assert.equal(loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-trained')).engine, 'bpe');
});

test('a vocabulary missing a byte cannot run on tiktoken', () => {
  const j = json('bytelevel-ranked');
  const [byteToken] = Object.entries(j.model.vocab as Record<string, number>).find(([t]) => t === 'Ā')!;
  delete j.model.vocab[byteToken];
  j.model.merges = (j.model.merges as [string, string][]).filter(([a, b]) => !(a + b).includes('Ā'));
  assert.throws(() => tokenizerFromJson(j, {}, {}, 'tiktoken'), /byte 0 has no token/);
});

test('both engines give the same ids on a tiktoken-ranked vocabulary', () => {
  const tiktoken = loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-ranked'), 'tiktoken');
  const bpe = loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-ranked'), 'bpe');
  for (const l of expectedLines('bytelevel-ranked')) assert.deepEqual(tiktoken.encode(l.text), bpe.encode(l.text));
  tiktoken.free();
});

test('named encodings cl100k_base and o200k_base encode and decode', () => {
  const cl = loadNamedEncoding('cl100k_base');
  assert.deepEqual(cl.encode('hello world'), [15339, 1917]);
  assert.deepEqual(cl.special.eos, [100257]);
  // Same ids as the tokenizer.json transformers converted from these ranks (ordinary text).
  const converted = loadTokenizer(join(TOKENIZERS_DIR, 'cl100k'));
  for (const l of expectedLines('cl100k')) {
    assert.deepEqual(cl.encode(l.text), converted.encode(l.text), JSON.stringify(l.text));
    assert.equal(cl.decode(cl.encode(l.text)), l.text);
  }
  const o200k = loadNamedEncoding('o200k_base');
  assert.equal(o200k.decode(o200k.encode('Grüße, 世界! 👋')), 'Grüße, 世界! 👋');
  assert.deepEqual(o200k.encode('<|endoftext|>', { parseSpecialTokens: true }), [199999]);
  assert.throws(() => loadNamedEncoding('p99k' as 'cl100k_base'), /unknown encoding "p99k"/);
  cl.free();
  o200k.free();
  converted.free();
});

test('BOS, EOS and add_bos_token come from tokenizer_config.json and generation_config.json', () => {
  const dir = join(scratch, 'sp');
  const source = join(TOKENIZERS_DIR, 'spbpe-legacy');
  rmSync(dir, { recursive: true, force: true });
  writeFileSync(join(scratch, 'unused'), '');
  const mk = (config: object, generation?: object) => {
    const d = mkdtempSync(join(scratch, 'sp-'));
    writeFileSync(join(d, 'tokenizer.json'), readFileSync(join(source, 'tokenizer.json')));
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(config));
    if (generation) writeFileSync(join(d, 'generation_config.json'), JSON.stringify(generation));
    return loadTokenizer(d);
  };
  const t = mk({ bos_token: '<s>', eos_token: { content: '</s>' }, add_bos_token: true }, { eos_token_id: [2, 7] });
  assert.equal(t.special.bos, 1);
  assert.deepEqual(t.special.eos.sort(), [2, 7]);
  assert.deepEqual(t.encode('hi', { addSpecialTokens: true }).slice(0, 1), [1]);
  const noBos = mk({ bos_token: '<s>', eos_token: '</s>', add_bos_token: false, add_eos_token: true });
  const ids = noBos.encode('hi', { addSpecialTokens: true });
  assert.notEqual(ids[0], 1);
  assert.equal(ids.at(-1), 2);
});

test('special-token text is plain text unless parsing is asked for', () => {
  const t = loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-ranked'));
  const text = 'a <|im_start|> b';
  const im = t.tokenToId('<|im_start|>')!;
  assert.ok(!t.encode(text).includes(im));
  assert.ok(t.encode(text, { parseSpecialTokens: true }).includes(im));
  // A literal range keeps user text literal inside an otherwise parsed prompt.
  const prompt = '<|im_start|>user\na <|im_start|> b<|im_end|>';
  const start = prompt.indexOf('a <');
  const ids = t.encode(prompt, { parseSpecialTokens: true, literalRanges: [[start, start + 'a <|im_start|> b'.length]] });
  assert.equal(ids.filter((id) => id === im).length, 1);
  t.free();
});

test('unsupported tokenizer.json parts are refused by name', () => {
  const j = json('bytelevel-ranked');
  assert.throws(() => tokenizerFromJson({ ...j, model: { ...j.model, type: 'WordPiece' } }), /tokenizer model "WordPiece" is not supported/);
  assert.throws(() => tokenizerFromJson({ ...j, normalizer: { type: 'BertNormalizer' } }), /normalizer "BertNormalizer" is not supported/);
  assert.throws(() => tokenizerFromJson({ ...j, pre_tokenizer: { type: 'Whitespace' } }), /pre-tokenizer "Whitespace" is not supported/);
  assert.throws(() => tokenizerFromJson({ ...j, decoder: { type: 'WordPiece' } }), /decoder "WordPiece" is not supported/);
  assert.throws(() => loadTokenizer(join(scratch, 'none')), /tokenizer\.json is missing/);
});

// TokenizerService: long prompts are tokenized on worker threads (same ids, and the event loop keeps
// turning), each on the least busy worker; and the token-count lower bound that lets the server refuse
// a prompt too long for the context without tokenizing it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { packageRoot } from '../../native/binding.js';
import { loadNamedEncoding } from '../../tokenizers/named-encodings.js';
import { loadTokenizer, tokenizerFromJson, type EncodeOptions, type Tokenizer } from '../../tokenizers/tokenizer.js';
import { TokenizerService } from '../../tokenizers/tokenizer-service.js';
import { expectedLines, TOKENIZER_FIXTURES, TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

let service: TokenizerService;
before(async () => {
  service = await TokenizerService.create({ dir: join(TOKENIZERS_DIR, 'cl100k') }, { workers: 1, inlineBelowChars: 1000 });
});
after(() => service.close());

const longText = () => {
  const corpus = expectedLines('cl100k').map((l) => l.text).join('\n');
  return corpus.repeat(Math.ceil(200_000 / corpus.length));
};

test('a long prompt encodes on a worker to the same ids as inline', async () => {
  const text = longText();
  assert.deepEqual(await service.encode(text), service.tokenizer.encode(text));
});

test('the event loop keeps turning while a long prompt is encoded', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  let done = false;
  const pending = service.encode(longText()).then((ids) => {
    done = true;
    return ids;
  });
  while (ticks < 3 && !done) await new Promise((r) => setTimeout(r, 1));
  clearInterval(timer);
  assert.equal(done, false, 'encoding finished before three 1 ms ticks; make the text longer');
  assert.ok((await pending).length > 10_000);
});

test('options reach the worker', async () => {
  assert.deepEqual(await service.encode('hello world'), [15339, 1917]);
  const text = '<|endoftext|>'.repeat(200);
  assert.deepEqual(await service.encode(text, { parseSpecialTokens: true }), Array(200).fill(100256));
  assert.ok(!(await service.encode(text)).includes(100256));
});

// A small vocabulary loads fast; the pools below start several workers.
const SMALL = join(TOKENIZERS_DIR, 'bytelevel-ranked');

test('long texts go to the worker with the fewest characters outstanding', async () => {
  const pool = await TokenizerService.create({ dir: SMALL }, { workers: 2, inlineBelowChars: 1000 });
  try {
    const big = longText();
    const small = big.slice(0, 20_000);
    const jobs = [pool.encode(big)];
    assert.deepEqual(pool.workerLoad, [big.length, 0]);
    jobs.push(pool.encode(small));
    assert.deepEqual(pool.workerLoad, [big.length, small.length]);
    // Round robin would queue this behind the long text.
    jobs.push(pool.encode(small));
    assert.deepEqual(pool.workerLoad, [big.length, 2 * small.length]);
    jobs.push(pool.encode('short text stays on the calling thread'));
    assert.deepEqual(pool.workerLoad, [big.length, 2 * small.length]);
    const ids = await Promise.all(jobs);
    assert.deepEqual(pool.workerLoad, [0, 0]);
    assert.deepEqual(ids[2], pool.tokenizer.encode(small));
  } finally {
    await pool.close();
  }
});

test('a worker that dies fails its own jobs; later texts go to the others', async () => {
  const pool = await TokenizerService.create({ dir: SMALL }, { workers: 2, inlineBelowChars: 1000 });
  try {
    const lost = pool.encode(longText());
    // No public way to crash a worker: end the first one from outside.
    await (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers[0].terminate();
    await assert.rejects(lost, /tokenizer worker failed: exited with code 1/);
    assert.deepEqual(pool.workerLoad, [Infinity, 0]);
    const next = longText().slice(0, 20_000);
    assert.deepEqual(await pool.encode(next), pool.tokenizer.encode(next));
    assert.deepEqual(pool.workerLoad, [Infinity, 0]);
  } finally {
    await pool.close();
  }
});

// The lower bound, minTokens: never above the real count, for every fixture tokenizer, the embedded model's and the named encodings.

const MODEL_DIR = join(packageRoot(), 'models', 'tiny-shakespeare');
const OPTIONS: EncodeOptions[] = [{}, { addSpecialTokens: true }, { parseSpecialTokens: true }];

/** A deterministic generator of integers in [0, n). */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Random text over scripts, whitespace, combining marks, emoji, '▁', lone surrogates and the tokenizer's added tokens. */
function randomText(r: (n: number) => number, length: number, added: string[]): string {
  const pieces: (() => string)[] = [
    () => String.fromCharCode(0x20 + r(95)),
    () => ' '.repeat(1 + r(8)),
    () => '\n'.repeat(1 + r(3)),
    () => 'the quick brown fox '.slice(r(10)),
    () => String.fromCharCode(0xc0 + r(64)),
    () => String.fromCharCode(0x3b1 + r(25)),
    () => String.fromCharCode(0x300 + r(0x70)),
    () => String.fromCharCode(0x4e00 + r(0x5000)),
    () => String.fromCodePoint(0x1f600 + r(0x50)),
    () => String.fromCodePoint(0x1d400 + r(0x300)),
    () => '▁',
    () => String.fromCharCode(0xd800 + r(0x800)),
    () => (added.length ? added[r(added.length)] : ''),
  ];
  let s = '';
  while (s.length < length) s += pieces[r(pieces.length)]();
  return s;
}

/** The text of the vocabulary's longest tokens, for texts of long tokens back to back. */
function longestTokenTexts(tok: Tokenizer, count: number): string[] {
  const texts: string[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.isSpecial(id) || tok.idToTokenString(id) === undefined) continue;
    const text = tok.decode([id]);
    if (!text.includes('\ufffd')) texts.push(text);
  }
  return texts.sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a)).slice(0, count);
}

function checkBound(tok: Tokenizer, text: string, what: string): void {
  for (const o of OPTIONS) {
    const real = tok.encode(text, o).length;
    const bound = tok.minTokens(text, o);
    assert.ok(bound <= real, `${what} ${JSON.stringify(o)}: bound ${bound} > ${real} tokens for ${JSON.stringify(text.slice(0, 80))}`);
    // The quick form (from the UTF-16 length) is a bound too.
    assert.ok(tok.minTokens(text, o, 0) <= real, `${what} ${JSON.stringify(o)}: quick bound above ${real}`);
  }
}

function checkTokenizer(tok: Tokenizer, name: string, lines: string[]): void {
  assert.ok(Number.isFinite(tok.maxTokenBytes), `${name}: no finite bound`);
  const added = ['<|endoftext|>', '<s>', '</s>', '<unk>', '<|im_start|>', '<|im_end|>'].filter((t) => tok.tokenToId(t) !== undefined);
  for (const line of lines) checkBound(tok, line, `${name} fixture line`);
  const r = rng(name.length * 7919);
  for (let i = 0; i < 60; i++) checkBound(tok, randomText(r, 1 + r(3000), added), `${name} random`);
  const repeated = [...longestTokenTexts(tok, 20), ' ', '\n', 'a', '▁', '  x', '😀', ...added];
  // Up to about 3,000 bytes: tiktoken takes quadratic time on one long run of a character.
  for (const unit of repeated) for (const n of [1, 7, Math.ceil(3000 / Buffer.byteLength(unit))]) checkBound(tok, unit.repeat(n), `${name} repeated`);
  // Back to back: long tokens joined, the tightest text for the bound.
  checkBound(tok, longestTokenTexts(tok, 50).join(''), `${name} longest tokens`);
}

for (const name of TOKENIZER_FIXTURES) {
  test(`minTokens never exceeds the real count: fixture ${name}`, () => {
    const tok = loadTokenizer(join(TOKENIZERS_DIR, name));
    try {
      checkTokenizer(tok, name, expectedLines(name).map((l) => l.text));
    } finally {
      tok.free();
    }
  });
}

test('minTokens never exceeds the real count: the embedded model and the named encodings', () => {
  const lines = expectedLines('cl100k').map((l) => l.text);
  for (const [name, tok] of [['tiny-shakespeare', loadTokenizer(MODEL_DIR)], ['cl100k_base', loadNamedEncoding('cl100k_base')], ['o200k_base', loadNamedEncoding('o200k_base')]] as const) {
    try {
      checkTokenizer(tok, name, lines);
    } finally {
      tok.free();
    }
  }
});

test('maxTokenBytes is the longest token in bytes of the text it matches', () => {
  const cl = loadNamedEncoding('cl100k_base');
  // cl100k's longest tokens are 128 bytes (runs of spaces and of punctuation).
  assert.equal(cl.maxTokenBytes, 128);
  assert.equal(cl.minTokens(' '.repeat(1280)), 10);
  assert.ok(cl.encode(' '.repeat(1280)).length >= 10);
  cl.free();
  const tiny = loadTokenizer(MODEL_DIR);
  // Byte-level tokens count their bytes, not the UTF-8 of their byte-level spelling ('Ġ' is one byte):
  // the longest text token is 10 bytes; the vocabulary also lists '<|begin_of_text|>' (17 bytes).
  assert.equal(Buffer.byteLength(longestTokenTexts(tiny, 1)[0]), 10);
  assert.equal(tiny.maxTokenBytes, 17);
  assert.equal(tiny.minTokens('x'.repeat(1700)), 100);
  assert.equal(tiny.minTokens('x', { addSpecialTokens: true }), 1 + tiny.encode('', { addSpecialTokens: true }).length);
  tiny.free();
});

const fixtureJson = (name: string) => JSON.parse(readFileSync(join(TOKENIZERS_DIR, name, 'tokenizer.json'), 'utf8'));

test('a long special token counts only where special tokens are parsed', () => {
  const j = fixtureJson('bytelevel-trained');
  const content = '<|a_special_token_longer_than_any_other|>';
  const tok = tokenizerFromJson({ ...j, added_tokens: [...j.added_tokens, { id: j.added_tokens.at(-1).id + 1, content, special: true }] });
  assert.equal(tok.maxTokenBytes, content.length);
  const text = content.repeat(100);
  assert.equal(tok.minTokens(text, { parseSpecialTokens: true }), 100);
  assert.equal(tok.minTokens(text), Math.ceil(text.length / 19));
  checkBound(tok, text, 'long special token');
});

test('a normalizer that shortens text widens the bound (NFKC: 4-byte letters become ASCII)', () => {
  const tok = tokenizerFromJson({ ...fixtureJson('bytelevel-trained'), normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }] } });
  // ' therefore' in mathematical bold letters: 37 bytes that NFKC turns into one 10-byte token.
  const bold = (s: string) => [...s].map((c) => (/[a-z]/.test(c) ? String.fromCodePoint(0x1d41a + c.charCodeAt(0) - 97) : c)).join('');
  const text = bold(' therefore').repeat(200);
  const real = tok.encode(text).length;
  const plain = loadTokenizer(join(TOKENIZERS_DIR, 'bytelevel-trained'));
  assert.ok(Math.ceil(Buffer.byteLength(text) / plain.maxTokenBytes) > real, 'bytes over the longest token alone would overshoot here');
  assert.equal(tok.maxTokenBytes, 4 * plain.maxTokenBytes);
  checkBound(tok, text, 'NFKC');
  checkBound(tok, '\u212a'.repeat(500), 'NFKC Kelvin');
  const lower = tokenizerFromJson({ ...fixtureJson('bytelevel-trained'), normalizer: { type: 'Lowercase' } });
  checkBound(lower, '\u212a'.repeat(500), 'Lowercase Kelvin');
  assert.equal(tokenizerFromJson({ ...fixtureJson('bytelevel-trained'), normalizer: { type: 'Replace', pattern: { String: 'abc' }, content: '' } }).maxTokenBytes, Infinity);
  plain.free();
});

test('unknown characters fused into one token leave no bound; byte fallback keeps one', () => {
  const j = fixtureJson('spbpe-metaspace');
  const fused = tokenizerFromJson({ ...j, model: { ...j.model, byte_fallback: false } });
  const text = '\u{10ffff}'.repeat(1000);
  assert.equal(fused.encode(text).length <= 2, true);
  assert.equal(fused.maxTokenBytes, Infinity);
  assert.equal(fused.minTokens(text), 0);
  const unfused = tokenizerFromJson({ ...j, model: { ...j.model, byte_fallback: false, fuse_unk: false } });
  assert.ok(Number.isFinite(unfused.maxTokenBytes));
  checkBound(unfused, text, 'unfused unknown');
  const fallback = loadTokenizer(join(TOKENIZERS_DIR, 'spbpe-metaspace'));
  assert.ok(Number.isFinite(fallback.maxTokenBytes));
  checkBound(fallback, text, 'byte fallback');
});

test('whitespace an added token strips is not counted', () => {
  const j = fixtureJson('bytelevel-trained');
  const marker = { id: j.added_tokens.at(-1).id + 1, content: '<|mark|>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true };
  const tok = tokenizerFromJson({ ...j, added_tokens: [...j.added_tokens, marker] });
  const text = `${' '.repeat(5000)}<|mark|>${'\n'.repeat(5000)}\u3000`.repeat(3);
  assert.ok(tok.encode(text, { parseSpecialTokens: true }).length < 20);
  checkBound(tok, text, 'strip');
  // Without parsing special tokens the marker is text and nothing is stripped.
  assert.ok(tok.minTokens(text) > 100);
});

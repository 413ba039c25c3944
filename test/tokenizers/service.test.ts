// Long prompts are tokenized on a worker thread: same ids, and the event loop keeps turning.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { TokenizerService } from '../../tokenizers/tokenizer-service.js';
import { expectedLines, TOKENIZERS_DIR } from '../helpers/tokenizer-fixtures.js';

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

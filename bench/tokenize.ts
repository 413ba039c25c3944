// Tokenizer encode throughput (MB/s) on the fixture corpus, and how long a
// 32k-token prompt holds the event loop inline versus through the worker.
//   npm run bench:tokenize
// bench/tokenize_hf.py measures HF tokenizers on the same corpus.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../native/binding.js';
import { loadTokenizer, type TokenizerEngine } from '../tokenizers/tokenizer.js';
import { TokenizerService } from '../tokenizers/tokenizer-service.js';

const DIR = join(packageRoot(), 'test', 'fixtures', 'tokenizers');
const TARGET_BYTES = 2_000_000;

/** The fixture corpus lines, repeated to about 2 MB (the same construction as tokenize_hf.py). */
function corpusLines(): string[] {
  const lines: string[] = JSON.parse(readFileSync(join(DIR, 'cl100k.expected.json'), 'utf8')).lines.map((l: { text: string }) => l.text);
  const size = lines.reduce((s, l) => s + Buffer.byteLength(l), 0);
  return Array.from({ length: Math.ceil(TARGET_BYTES / size) }, () => lines).flat();
}

function mbPerSecond(bytes: number, run: () => void): number {
  run(); // warm-up (and fills BPE caches, as a running server has them)
  const t0 = performance.now();
  run();
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

const lines = corpusLines();
const text = lines.join('\n');
const bytes = Buffer.byteLength(text);
console.log(`corpus: ${lines.length} lines, ${(bytes / 1e6).toFixed(2)} MB`);
console.log('| tokenizer | engine | per line MB/s | whole text MB/s |');
console.log('| --- | --- | ---: | ---: |');
const cases: [string, TokenizerEngine][] = [['cl100k', 'tiktoken'], ['cl100k', 'bpe'], ['bytelevel-ranked', 'tiktoken'], ['bytelevel-trained', 'bpe'], ['spbpe-legacy', 'bpe']];
for (const [name, engine] of cases) {
  const tok = loadTokenizer(join(DIR, name), engine);
  const perLine = mbPerSecond(bytes, () => lines.forEach((l) => tok.encode(l)));
  const whole = mbPerSecond(bytes, () => tok.encode(text));
  console.log(`| ${name} | ${tok.engine} | ${perLine.toFixed(2)} | ${whole.toFixed(2)} |`);
  tok.free();
}

// A 32k-token prompt: the longest event-loop stall while it is encoded.
const service = await TokenizerService.create({ dir: join(DIR, 'cl100k') }, { workers: 1 });
let prompt = '';
while (service.tokenizer.encode(prompt).length < 32768) prompt += lines.slice(0, 200).join('\n');
const promptTokens = service.tokenizer.encode(prompt).length;
/** Longest gap between 1 ms timer ticks while run() is in flight. */
async function worstStall(run: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  worst = 0;
  await new Promise<void>((r) => setImmediate(async () => {
    await run();
    r();
  }));
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(timer);
  return worst;
}
const inline = await worstStall(async () => service.tokenizer.encode(prompt));
const offLoop = await worstStall(() => service.encode(prompt));
console.log(`${promptTokens}-token prompt (${(prompt.length / 1e3).toFixed(0)}K chars): longest event-loop stall ${inline.toFixed(1)} ms inline, ${offLoop.toFixed(1)} ms through TokenizerService`);
await service.close();

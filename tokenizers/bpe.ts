import { byteTokenName } from './decoders.js';

/**
 * Merge-rule BPE exactly as Hugging Face tokenizers applies it to one word:
 * repeatedly merge the adjacent pair with the lowest merge index (the
 * leftmost on ties), with byte fallback and unknown-token fusing.
 */
export interface BpeModel {
  vocab: Map<string, number>;
  /** `${leftId} ${rightId}` -> merge index and the merged token's id */
  merges: Map<string, { rank: number; id: number }>;
  unkId: number | null;
  fuseUnk: boolean;
  byteFallback: boolean;
  ignoreMerges: boolean;
  cache?: Map<string, number[]>;
}

/** Builds the merge table of a tokenizer.json BPE model. */
export function buildMerges(vocab: Map<string, number>, merges: (string | [string, string])[]): BpeModel['merges'] {
  const table = new Map<string, { rank: number; id: number }>();
  merges.forEach((m, rank) => {
    const [a, b] = typeof m === 'string' ? splitMergeString(m) : m;
    const ia = vocab.get(a);
    const ib = vocab.get(b);
    const id = vocab.get(a + b);
    if (ia === undefined || ib === undefined || id === undefined)
      throw new Error(`merge ${rank} (${JSON.stringify(a)}, ${JSON.stringify(b)}) uses a token missing from the vocab`);
    const key = `${ia} ${ib}`;
    if (!table.has(key)) table.set(key, { rank, id });
  });
  return table;
}

function splitMergeString(m: string): [string, string] {
  const i = m.indexOf(' ', 1);
  if (i < 0) throw new Error(`merge ${JSON.stringify(m)} is not two tokens`);
  return [m.slice(0, i), m.slice(i + 1)];
}

/** A binary min-heap of candidate merges keyed by (rank, position). */
class MergeQueue {
  private items: { rank: number; pos: number; id: number; left: number; right: number }[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: { rank: number; pos: number; id: number; left: number; right: number }): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }

  private less(x: { rank: number; pos: number }, y: { rank: number; pos: number }): boolean {
    return x.rank < y.rank || (x.rank === y.rank && x.pos < y.pos);
  }
}

/** Initial symbols of a word: one per character, byte-fallback or unknown when a character is not in the vocab. */
function initialSymbols(model: BpeModel, word: string): number[] {
  const ids: number[] = [];
  let lastWasUnk = false;
  for (const ch of word) {
    const id = model.vocab.get(ch);
    if (id !== undefined) {
      ids.push(id);
      lastWasUnk = false;
      continue;
    }
    if (model.byteFallback) {
      const bytes = [...Buffer.from(ch, 'utf8')].map((b) => model.vocab.get(byteTokenName(b)));
      if (bytes.every((b) => b !== undefined)) {
        ids.push(...(bytes as number[]));
        lastWasUnk = false;
        continue;
      }
    }
    if (model.unkId === null) throw new Error(`character ${JSON.stringify(ch)} is not in the vocabulary and there is no unknown token`);
    if (!(model.fuseUnk && lastWasUnk)) ids.push(model.unkId);
    lastWasUnk = true;
  }
  return ids;
}

export function bpeWord(model: BpeModel, word: string): number[] {
  const cached = model.cache?.get(word);
  if (cached) return cached;
  const ids = mergeWord(model, word);
  if (model.cache && word.length <= MAX_CACHED_WORD) {
    if (model.cache.size >= CACHE_ENTRIES) model.cache.clear();
    model.cache.set(word, ids);
  }
  return ids;
}

/** Words are cached as HF does; long ones (whole SentencePiece segments) are not worth it. */
const MAX_CACHED_WORD = 64;
const CACHE_ENTRIES = 100_000;

function mergeWord(model: BpeModel, word: string): number[] {
  if (model.ignoreMerges) {
    const whole = model.vocab.get(word);
    if (whole !== undefined) return [whole];
  }
  const ids = initialSymbols(model, word);
  const n = ids.length;
  if (n < 2) return ids;
  // Doubly linked list over symbol slots; a removed slot has len 0.
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const alive = new Array<boolean>(n).fill(true);
  const queue = new MergeQueue();
  const consider = (left: number) => {
    const right = next[left];
    if (right < 0) return;
    const m = model.merges.get(`${ids[left]} ${ids[right]}`);
    if (m) queue.push({ rank: m.rank, pos: left, id: m.id, left: ids[left], right: ids[right] });
  };
  for (let i = 0; i < n - 1; i++) consider(i);
  while (queue.size > 0) {
    const top = queue.pop();
    const left = top.pos;
    const right = next[left];
    // Stale entry: one of its symbols has changed since it was queued.
    if (!alive[left] || right < 0 || ids[left] !== top.left || ids[right] !== top.right) continue;
    ids[left] = top.id;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    if (prev[left] >= 0) consider(prev[left]);
    consider(left);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
  return out;
}

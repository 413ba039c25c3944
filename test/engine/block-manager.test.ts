// Property tests of the KV block manager: random allocate / append / compute
// / free / fork sequences keep its invariants.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import fc from 'fast-check';

import { hashBlock } from '../../engine/block-hash.js';
import { BlockManager, type BlockOwner } from '../../engine/block-manager.js';

class Owner implements BlockOwner {
  blockTable: number[] = [];
  numHashedBlocks = 0;
  lastBlockHash: number | null = null;
  computed = 0;
  constructor(
    readonly tokens: number[],
    readonly promptLength = tokens.length,
  ) {}
  get numTokens() {
    return this.tokens.length;
  }
}

type Op =
  | { kind: 'new'; prefixOf: number; shared: number; extra: number[] }
  | { kind: 'grow'; who: number; tokens: number[] }
  | { kind: 'compute'; who: number }
  | { kind: 'free'; who: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('new' as const), prefixOf: fc.nat(20), shared: fc.nat(80), extra: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant('grow' as const), who: fc.nat(20), tokens: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 20 }) }),
  fc.record({ kind: fc.constant('compute' as const), who: fc.nat(20) }),
  fc.record({ kind: fc.constant('free' as const), who: fc.nat(20) }),
);

function run(ops: Op[], numBlocks: number, blockSize: number): void {
  const bm = new BlockManager(numBlocks, blockSize);
  const live: Owner[] = [];
  let hits = 0;
  for (const op of ops) {
    if (op.kind === 'new') {
      // Fork: share a prefix of a live sequence's tokens (prefix-cache hits), then diverge.
      const base = live[op.prefixOf % Math.max(1, live.length)];
      const prefix = base ? base.tokens.slice(0, Math.min(op.shared, base.computed)) : [];
      const seq = new Owner([...prefix, ...op.extra]);
      if (bm.canAllocate(seq, seq.numTokens)) {
        const cached = bm.allocate(seq, seq.numTokens);
        assert.ok(cached % blockSize === 0 && cached < seq.numTokens);
        assert.equal(seq.blockTable.length, bm.blocksFor(seq.numTokens));
        seq.computed = cached;
        hits += cached;
        live.push(seq);
      }
    } else if (live.length > 0) {
      const seq = live[op.who % live.length];
      if (op.kind === 'grow') {
        const target = seq.numTokens + op.tokens.length;
        if (bm.canAppend(seq, target)) {
          seq.tokens.push(...op.tokens);
          bm.append(seq, target);
        }
      } else if (op.kind === 'compute') {
        seq.computed = seq.numTokens;
        bm.registerComputed(seq, seq.computed);
      } else {
        bm.free(seq);
        live.splice(live.indexOf(seq), 1);
      }
    }
    bm.checkInvariants(live);
    assert.equal(bm.numFreeBlocks + bm.numUsedBlocks, numBlocks);
    for (const s of live) assert.ok(s.blockTable.length >= bm.blocksFor(s.numTokens));
  }
  assert.equal(bm.prefixCacheHitTokens, hits);
  for (const s of live.splice(0)) bm.free(s);
  bm.checkInvariants([]);
  assert.equal(bm.numFreeBlocks, numBlocks);
}

test('random allocate/append/compute/free/fork sequences keep the invariants', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), fc.integer({ min: 4, max: 40 }), fc.constantFrom(1, 2, 4, 16), (ops, n, b) => run(ops, n, b)),
    { numRuns: 400, seed: 42 },
  );
});

test('a freed prefix is reused by a later sequence with the same tokens, verified token by token', () => {
  const bm = new BlockManager(8, 4);
  const a = new Owner([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  bm.allocate(a, 9);
  bm.registerComputed(a, 9);
  const blocks = a.blockTable.slice(0, 2);
  bm.free(a);
  const b = new Owner([1, 2, 3, 4, 5, 6, 7, 8, 42, 43]);
  assert.equal(bm.allocate(b, 10), 8);
  assert.deepEqual(b.blockTable.slice(0, 2), blocks);
  const c = new Owner([1, 2, 3, 4, 9, 9, 9, 9, 1]);
  assert.equal(bm.allocate(c, 9), 4); // shares only the first block
  bm.checkInvariants([b, c]);
});

test('without cacheGenerated only blocks wholly inside the prompt are registered', () => {
  const bm = new BlockManager(8, 4, true, false);
  const a = new Owner([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 6); // a 6-token prompt, 6 generated
  bm.allocate(a, 12);
  bm.registerComputed(a, 12);
  bm.free(a);
  const b = new Owner([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(bm.allocate(b, 13), 4, 'the first block only: the second holds generated tokens 7 and 8');
  bm.checkInvariants([b]);
  const cached = new BlockManager(8, 4);
  const c = new Owner([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 6);
  cached.allocate(c, 12);
  cached.registerComputed(c, 12);
  cached.free(c);
  assert.equal(cached.allocate(new Owner([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]), 13), 12, 'by default every computed block');
});

test('a prompt that is entirely cached still leaves its last token to compute', () => {
  const bm = new BlockManager(8, 4);
  const a = new Owner([1, 2, 3, 4, 5, 6, 7, 8]);
  bm.allocate(a, 8);
  bm.registerComputed(a, 8);
  const b = new Owner([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(bm.allocate(b, 8), 4);
  bm.checkInvariants([a, b]);
});

test('cached blocks are evicted least recently freed first, only when nothing else is free', () => {
  const bm = new BlockManager(4, 2);
  const a = new Owner([1, 1, 2, 2]);
  const b = new Owner([3, 3, 4, 4]);
  for (const s of [a, b]) {
    bm.allocate(s, 4);
    bm.registerComputed(s, 4);
  }
  bm.free(a);
  bm.free(b);
  const c = new Owner([9, 9, 9, 9]); // two fresh blocks: a's are evicted, b's stay cached
  bm.allocate(c, 4);
  const d = new Owner([3, 3, 4, 4]);
  assert.equal(bm.allocate(d, 4), 2);
  bm.checkInvariants([c, d]);
});

test('block hashes are safe integers that depend on the parent chain and on every token', () => {
  const tokens = Array.from({ length: 32 }, (_, i) => (i * 7919) % 128256);
  const first = hashBlock(null, tokens, 0, 16);
  const second = hashBlock(first, tokens, 16, 32);
  for (const h of [first, second]) assert.ok(Number.isSafeInteger(h) && h >= 0, `${h}`);
  // The same 16 tokens under another parent, or with one token changed (high bits too), hash apart.
  assert.notEqual(hashBlock(null, tokens, 16, 32), second);
  assert.notEqual(hashBlock(first + 1, tokens, 16, 32), second);
  for (const delta of [1, 1 << 8, 1 << 16]) {
    const changed = [...tokens];
    changed[20] ^= delta;
    assert.notEqual(hashBlock(first, changed, 16, 32), second, `token changed by ${delta}`);
  }
  assert.equal(hashBlock(first, tokens, 16, 32), second, 'deterministic');
});

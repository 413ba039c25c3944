import { hashBlock } from './block-hash.js';

/** What the block manager needs of a sequence: its tokens and its block table. */
export interface BlockOwner {
  /** Prompt and generated tokens so far. */
  readonly tokens: ArrayLike<number>;
  readonly numTokens: number;
  /** Tokens of the prompt; the rest were generated. */
  readonly promptLength: number;
  /** KV block ids, in position order; owned by the block manager's bookkeeping. */
  blockTable: number[];
  /** How many leading blocks have been registered in the prefix cache. */
  numHashedBlocks: number;
  /** Hash of the last registered block (the chain's tail). */
  lastBlockHash: number | null;
}

interface CachedBlock {
  hash: number;
  parent: number | null;
  tokens: Int32Array;
}

/**
 * Pure bookkeeping of the runtime's KV block pool. Every change comes as a
 * pair: a cheap can* check, then the change, so a step never fails halfway.
 * Full blocks are registered under a chained hash; freed blocks keep their
 * contents and hash and are reused on a prefix hit until evicted,
 * least-recently-freed first.
 */
export class BlockManager {
  private readonly refCount: Int32Array;
  /** Blocks with no owner and no cached content. */
  private readonly unused: number[] = [];
  /** Blocks with no owner whose content is cached, oldest first (Map keeps insertion order). */
  private readonly evictable = new Map<number, true>();
  private readonly byHash = new Map<number, number>();
  private readonly cached: (CachedBlock | null)[];
  private hitTokens = 0;

  /**
   * cacheGenerated false: only blocks wholly inside a prompt are registered. Where the runtime
   * computes generated tokens with other arithmetic than prompt rows (the CUDA backend's decode and
   * prefill kernels under batch invariance), a block of generated tokens reused as part of a later
   * prompt would give that request other bits than computing it would, so its tokens would depend
   * on what ran before it.
   */
  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly enablePrefixCache = true,
    readonly cacheGenerated = true,
  ) {
    this.refCount = new Int32Array(numBlocks);
    this.cached = new Array(numBlocks).fill(null);
    for (let b = numBlocks - 1; b >= 0; b--) this.unused.push(b);
  }

  get numFreeBlocks(): number {
    return this.unused.length + this.evictable.size;
  }

  get numUsedBlocks(): number {
    return this.numBlocks - this.numFreeBlocks;
  }

  /** Prompt tokens served from the prefix cache since start. */
  get prefixCacheHitTokens(): number {
    return this.hitTokens;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * Leading full blocks of the sequence's tokens already in the cache, never
   * all of them: the last token is always computed, so its logits exist.
   */
  private prefixHits(seq: BlockOwner): number[] {
    if (!this.enablePrefixCache) return [];
    const hits: number[] = [];
    const B = this.blockSize;
    const maxBlocks = Math.floor((seq.numTokens - 1) / B);
    let parent: number | null = null;
    for (let i = 0; i < maxBlocks; i++) {
      const hash = hashBlock(parent, seq.tokens, i * B, (i + 1) * B);
      const block = this.byHash.get(hash);
      if (block === undefined || !this.sameContent(this.cached[block]!, parent, seq.tokens, i * B)) break;
      hits.push(block);
      parent = hash;
    }
    return hits;
  }

  private sameContent(c: CachedBlock, parent: number | null, tokens: ArrayLike<number>, start: number): boolean {
    if (c.parent !== parent) return false;
    for (let j = 0; j < c.tokens.length; j++) if (c.tokens[j] !== tokens[start + j]) return false;
    return true;
  }

  /** Tokens a new sequence's blocks must cover: its cached prefix plus a first chunk of at most chunkLimit. */
  private coverage(seq: BlockOwner, hits: number[], chunkLimit: number): number {
    const cached = hits.length * this.blockSize;
    return cached + Math.min(seq.numTokens - cached, chunkLimit);
  }

  /** Can a sequence with no blocks get its prefix-cache hits and blocks for a first chunk of up to chunkLimit tokens? */
  canAllocate(seq: BlockOwner, chunkLimit: number): boolean {
    const hits = this.prefixHits(seq);
    const fromPool = hits.filter((b) => this.refCount[b] === 0).length;
    const fresh = this.blocksFor(this.coverage(seq, hits, chunkLimit)) - hits.length;
    return fresh + fromPool <= this.numFreeBlocks;
  }

  /**
   * Gives the sequence its prefix-cache hits and fresh blocks for a first
   * chunk of up to chunkLimit tokens. Returns how many leading tokens are
   * already computed.
   */
  allocate(seq: BlockOwner, chunkLimit: number): number {
    if (seq.blockTable.length > 0) throw new Error('allocate on a sequence that already has blocks');
    const hits = this.prefixHits(seq);
    const numTokens = this.coverage(seq, hits, chunkLimit);
    for (const b of hits) this.take(b);
    seq.blockTable = hits;
    seq.numHashedBlocks = hits.length;
    seq.lastBlockHash = hits.length > 0 ? this.cached[hits[hits.length - 1]]!.hash : null;
    const cachedTokens = hits.length * this.blockSize;
    this.hitTokens += cachedTokens;
    this.grow(seq, numTokens);
    return cachedTokens;
  }

  /** Can the sequence's table grow to cover numTokens tokens? */
  canAppend(seq: BlockOwner, numTokens: number): boolean {
    return this.blocksFor(numTokens) - seq.blockTable.length <= this.numFreeBlocks;
  }

  append(seq: BlockOwner, numTokens: number): void {
    this.grow(seq, numTokens);
  }

  /** Registers the sequence's full, computed blocks in the prefix cache. */
  registerComputed(seq: BlockOwner, numComputedTokens: number): void {
    if (!this.enablePrefixCache) return;
    const B = this.blockSize;
    const limit = this.cacheGenerated ? numComputedTokens : Math.min(numComputedTokens, seq.promptLength);
    const full = Math.min(Math.floor(limit / B), seq.blockTable.length);
    for (let i = seq.numHashedBlocks; i < full; i++) {
      const block = seq.blockTable[i];
      const hash = hashBlock(seq.lastBlockHash, seq.tokens, i * B, (i + 1) * B);
      if (!this.byHash.has(hash) && this.cached[block] === null) {
        this.byHash.set(hash, block);
        const tokens = new Int32Array(B);
        for (let j = 0; j < B; j++) tokens[j] = seq.tokens[i * B + j];
        this.cached[block] = { hash, parent: seq.lastBlockHash, tokens };
      }
      seq.lastBlockHash = hash;
      seq.numHashedBlocks = i + 1;
    }
  }

  /** Returns the sequence's blocks to the pool; cached ones stay reusable until evicted. */
  free(seq: BlockOwner): void {
    // Tail first, so the head of a shared prefix is the last to be evicted.
    for (let i = seq.blockTable.length - 1; i >= 0; i--) {
      const b = seq.blockTable[i];
      if (--this.refCount[b] > 0) continue;
      if (this.refCount[b] < 0) throw new Error(`block ${b} freed more often than it was taken`);
      if (this.cached[b] !== null) this.evictable.set(b, true);
      else this.unused.push(b);
    }
    seq.blockTable = [];
    seq.numHashedBlocks = 0;
    seq.lastBlockHash = null;
  }

  private grow(seq: BlockOwner, numTokens: number): void {
    const need = this.blocksFor(numTokens) - seq.blockTable.length;
    if (need > this.numFreeBlocks) throw new Error(`out of KV blocks: need ${need}, ${this.numFreeBlocks} free (call canAppend first)`);
    for (let i = 0; i < need; i++) seq.blockTable.push(this.takeFresh());
  }

  private take(block: number): void {
    if (this.refCount[block]++ === 0) this.evictable.delete(block);
  }

  private takeFresh(): number {
    let block = this.unused.pop();
    if (block === undefined) {
      block = this.evictable.keys().next().value as number;
      this.evictable.delete(block);
      const c = this.cached[block]!;
      this.byHash.delete(c.hash);
      this.cached[block] = null;
    }
    this.refCount[block] = 1;
    return block;
  }

  /** Consistency check for tests: every block is free, evictable or owned, exactly once. */
  checkInvariants(owners: BlockOwner[]): void {
    const owned = new Map<number, number>();
    for (const o of owners) for (const b of o.blockTable) owned.set(b, (owned.get(b) ?? 0) + 1);
    const seen = new Set<number>();
    for (const b of this.unused) {
      if (seen.has(b) || owned.has(b) || this.cached[b] !== null) throw new Error(`free block ${b} is listed twice, owned or cached`);
      seen.add(b);
    }
    for (const b of this.evictable.keys()) {
      if (seen.has(b) || owned.has(b) || this.cached[b] === null) throw new Error(`evictable block ${b} is listed twice, owned or uncached`);
      seen.add(b);
    }
    for (let b = 0; b < this.numBlocks; b++) {
      if ((owned.get(b) ?? 0) !== this.refCount[b]) throw new Error(`block ${b} has ref count ${this.refCount[b]} but ${owned.get(b) ?? 0} owners`);
      if (!seen.has(b) && !owned.has(b)) throw new Error(`block ${b} is neither free nor owned`);
    }
    for (const [hash, b] of this.byHash) if (this.cached[b]?.hash !== hash) throw new Error(`hash ${hash} points at block ${b}, which holds other content`);
  }
}

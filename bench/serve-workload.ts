// The serving benchmark's workload: random prompts and Poisson arrival times,
// all drawn from one seeded generator so a --seed reproduces the run's inputs.

/** A uniform [0, 1) generator (mulberry32: 32-bit state, fast, good enough for load shapes). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The token-id range random prompts draw from, [lo, hi). Low ids are where
 * tokenizers keep their control tokens (BOS/EOS/pad, byte tokens), and
 * every tokenizer in use has ordinary tokens up to 20,000 (large vocabularies
 * put added special tokens at their top end), so ids in [100, 20000) are safe
 * for all of them; a smaller vocabulary shrinks both ends.
 */
export function promptIdRange(vocabSize: number): { lo: number; hi: number } {
  const hi = Math.min(vocabSize, 20_000);
  return { lo: Math.min(100, Math.floor(hi / 8)), hi };
}

export function tokenPrompt(rand: () => number, length: number, range: { lo: number; hi: number }): number[] {
  const ids = new Array<number>(length);
  for (let i = 0; i < length; i++) ids[i] = range.lo + Math.floor(rand() * (range.hi - range.lo));
  return ids;
}

/** Plain English words for text prompts; most are one token in a large vocabulary. */
const WORDS = (
  'the of and to in is was for on that with as by at from his her they this which had not are but be have one all were ' +
  'there their when who will more no if out so said what up its about into than them can only other new some could time ' +
  'these two may then do first any my now such like our over man me even most made after also did many before must ' +
  'through back years where much your way well down should because each just those people how too little state good very ' +
  'make world still own see men work long get here between both life being under never day same another know while last ' +
  'might us great old year off come since against go came right used take three king light night love heart sword crown'
).split(' ');

export function textPrompt(rand: () => number, words: number): string {
  const out = new Array<string>(words);
  for (let i = 0; i < words; i++) out[i] = WORDS[Math.floor(rand() * WORDS.length)];
  return out.join(' ');
}

/**
 * Start offsets in milliseconds of n requests arriving as a Poisson process
 * of rate per second (exponential gaps); all zero for an infinite rate.
 */
export function poissonOffsets(rand: () => number, n: number, ratePerS: number): number[] {
  const out = new Array<number>(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    out[i] = t;
    if (Number.isFinite(ratePerS)) t += (-Math.log(1 - rand()) / ratePerS) * 1000;
  }
  return out;
}

/**
 * Chained hash of a full KV block: the parent block's hash and this block's
 * token ids. Two 32-bit FNV-1a lanes with different seeds make a 53-bit
 * number (a Map key without a string per block: prompt steps register
 * hundreds of blocks); a hit is still verified against the stored tokens.
 */
export function hashBlock(parent: number | null, tokens: ArrayLike<number>, start: number, end: number): number {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  if (parent !== null) {
    const hi = Math.floor(parent / 0x200000);
    a = Math.imul(a ^ hi, 0x01000193);
    b = Math.imul(b ^ (parent % 0x200000), 0x01000193);
  }
  for (let i = start; i < end; i++) {
    const t = tokens[i];
    a = Math.imul(a ^ (t & 0xffff), 0x01000193);
    a = Math.imul(a ^ (t >>> 16), 0x01000193);
    b = Math.imul(b ^ (t & 0xff), 0x01000193);
    b = Math.imul(b ^ (t >>> 8), 0x01000193);
  }
  // 32 bits of a above 21 of b: an integer below 2^53.
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

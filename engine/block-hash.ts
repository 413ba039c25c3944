/**
 * Chained hash of a full KV block: the parent block's hash and this block's
 * token ids. Two 32-bit FNV-1a lanes with different seeds make a 64-bit key;
 * a hit is still verified against the stored tokens.
 */
export function hashBlock(parent: string | null, tokens: ArrayLike<number>, start: number, end: number): string {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  if (parent !== null) {
    for (let i = 0; i < parent.length; i++) {
      a = Math.imul(a ^ parent.charCodeAt(i), 0x01000193);
      b = Math.imul(b ^ parent.charCodeAt(i), 0x01000193);
    }
  }
  for (let i = start; i < end; i++) {
    const t = tokens[i];
    a = Math.imul(a ^ (t & 0xffff), 0x01000193);
    a = Math.imul(a ^ (t >>> 16), 0x01000193);
    b = Math.imul(b ^ (t & 0xff), 0x01000193);
    b = Math.imul(b ^ (t >>> 8), 0x01000193);
  }
  return (a >>> 0).toString(36) + ':' + (b >>> 0).toString(36);
}

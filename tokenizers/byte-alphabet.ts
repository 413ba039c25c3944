/**
 * GPT-2's byte-level alphabet: each byte maps to one printable Unicode
 * character, so byte-level BPE vocabularies are plain strings.
 */
function buildByteToChar(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.includes(b) ? b : next++);
  return map;
}

export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** UTF-8 bytes of text, as byte-level characters. */
export function toByteLevel(text: string): string {
  return bytesToByteLevel(Buffer.from(text, 'utf8'));
}

export function bytesToByteLevel(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += BYTE_TO_CHAR[b];
  return out;
}

/** Bytes of a byte-level string; characters outside the alphabet contribute their own UTF-8. */
export function fromByteLevel(token: string): Buffer {
  const bytes: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
    else bytes.push(...Buffer.from(ch, 'utf8'));
  }
  return Buffer.from(bytes);
}

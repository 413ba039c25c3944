import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Element dtypes the safetensors format defines, with their sizes in bytes. */
export const DTYPE_SIZES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file, [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Largest header we accept; real ones are well under 1 MB. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function bad(path: string, problem: string): Error {
  return new Error(`invalid safetensors file ${path}: ${problem}`);
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseEntry(path: string, name: string, raw: unknown, dataStart: number, dataSize: number): TensorInfo {
  const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e !== 'object' || e === null) throw bad(path, `entry for tensor ${name} is not an object`);
  if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_SIZES))
    throw bad(path, `tensor ${name} has unknown dtype ${JSON.stringify(e.dtype)}`);
  if (!Array.isArray(e.shape) || !e.shape.every(isCount))
    throw bad(path, `tensor ${name} has a shape that is not a list of non-negative integers`);
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !isCount(offs[0]) || !isCount(offs[1]) || offs[0] > offs[1])
    throw bad(path, `tensor ${name} has data_offsets that are not [begin, end] with begin <= end`);
  if (offs[1] > dataSize)
    throw bad(path, `tensor ${name} ends at data offset ${offs[1]}, past the ${dataSize} bytes of data (truncated file?)`);
  const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
  const expected = numel * DTYPE_SIZES[e.dtype];
  if (offs[1] - offs[0] !== expected)
    throw bad(path, `tensor ${name} spans ${offs[1] - offs[0]} bytes but shape [${e.shape}] of ${e.dtype} needs ${expected}`);
  return { name, dtype: e.dtype, shape: e.shape as number[], begin: dataStart + offs[0], end: dataStart + offs[1] };
}

/** Reads and checks the header of a .safetensors file without reading its data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const lenBuf = readExactly(fd, 8, 0);
    if (lenBuf.length < 8) throw bad(path, `file is ${fileSize} bytes, too short for the 8-byte header length`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES) throw bad(path, `header length ${headerLen} is larger than ${MAX_HEADER_BYTES}`);
    if (8 + headerLen > fileSize) throw bad(path, `header length ${headerLen} runs past the end of the ${fileSize}-byte file`);
    let json: unknown;
    try {
      json = JSON.parse(readExactly(fd, headerLen, 8).toString('utf8'));
    } catch {
      throw bad(path, 'header is not valid JSON');
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(path, 'header is not a JSON object');
    const dataStart = 8 + headerLen;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json)) {
      if (name === '__metadata__') metadata = raw as Record<string, string>;
      else tensors.set(name, parseEntry(path, name, raw, dataStart, fileSize - dataStart));
    }
    checkNoOverlap(path, [...tensors.values()]);
    return { path, fileSize, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function checkNoOverlap(path: string, tensors: TensorInfo[]): void {
  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i].begin < sorted[i - 1].end)
      throw bad(path, `tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap`);
}

/** Reads one tensor's raw bytes (for fixtures and tools; the runtime maps files instead). */
export function readTensorBytes(header: SafetensorsHeader, name: string): Buffer {
  const t = header.tensors.get(name);
  if (!t) throw new Error(`${header.path} has no tensor ${name}`);
  const fd = openSync(header.path, 'r');
  try {
    return readExactly(fd, t.end - t.begin, t.begin);
  } finally {
    closeSync(fd);
  }
}

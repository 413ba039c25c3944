// Every kind of bad input is a thrown Error that names the problem; the
// process never crashes and the runtime keeps working afterwards.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime, type StepBatch } from '../../native/index.js';
import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';
import { makeBatch, type Chunk } from '../helpers/batch.js';
import { MODELS_DIR } from '../helpers/fixtures.js';
import { writeSafetensors, type RawTensor } from '../helpers/safetensors-writer.js';

const SOURCE = join(MODELS_DIR, 'llama3-scaled');
const KV_BYTES = 4 * 1024 * 1024;
let scratch: string;

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tachyon-bad-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

let copies = 0;
/** A fresh copy of the fixture checkpoint to damage. */
function copyModel(): string {
  const dir = join(scratch, `m${copies++}`);
  cpSync(SOURCE, dir, { recursive: true });
  return dir;
}

function tensorsOf(dir: string): Record<string, RawTensor> {
  const h = readSafetensorsHeader(join(dir, 'model.safetensors'));
  const out: Record<string, RawTensor> = {};
  for (const t of h.tensors.values()) out[t.name] = { dtype: t.dtype, shape: t.shape, data: readTensorBytes(h, t.name) };
  return out;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const path = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(path, 'utf8'));
  edit(c);
  writeFileSync(path, JSON.stringify(c));
}

async function rejectsLoad(dir: string, pattern: RegExp): Promise<void> {
  await assert.rejects(Runtime.load({ modelDir: dir, kvCacheBytes: KV_BYTES }), (e: Error) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('a damaged checkpoint is refused with a message naming the problem', () => {
  test('truncated safetensors file', async () => {
    const dir = copyModel();
    const file = join(dir, 'model.safetensors');
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    await rejectsLoad(dir, /past the \d+ bytes of data \(truncated file\?\)/);
  });

  test('file shorter than the header length field', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'model.safetensors'), Buffer.from([1, 2, 3]));
    await rejectsLoad(dir, /too short for the 8-byte header length/);
  });

  test('header length past the end of the file', async () => {
    const dir = copyModel();
    const buf = readFileSync(join(dir, 'model.safetensors'));
    buf.writeBigUInt64LE(BigInt(buf.length * 2), 0);
    writeFileSync(join(dir, 'model.safetensors'), buf);
    await rejectsLoad(dir, /header length \d+ runs past the end/);
  });

  test('header that is not JSON', async () => {
    const dir = copyModel();
    const buf = readFileSync(join(dir, 'model.safetensors'));
    buf.write('{not json', 8);
    writeFileSync(join(dir, 'model.safetensors'), buf);
    await rejectsLoad(dir, /header is not valid JSON/);
  });

  test('header that lies about a dtype', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    const e = t['model.norm.weight'];
    writeSafetensors(join(dir, 'model.safetensors'), t, {});
    const h = readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.get('model.norm.weight')!;
    const lie = { 'model.norm.weight': { dtype: 'F16', shape: e.shape, data_offsets: [h.begin - h.begin, h.end - h.begin] } };
    writeSafetensors(join(dir, 'model.safetensors'), { 'model.norm.weight': e }, lie);
    await rejectsLoad(dir, /tensor model\.norm\.weight spans 384 bytes but shape \[96\] of F16 needs 192/);
  });

  test('header whose offsets point past the data', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    const big = 1 << 30;
    writeSafetensors(join(dir, 'model.safetensors'), t, {
      'model.norm.weight': { dtype: 'F32', shape: [96], data_offsets: [big, big + 384] },
    });
    await rejectsLoad(dir, /model\.norm\.weight ends at data offset \d+, past the/);
  });

  test('tensors that overlap', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    writeSafetensors(join(dir, 'model.safetensors'), t, {
      'model.norm.weight': { dtype: 'F32', shape: [96], data_offsets: [0, 384] },
    });
    await rejectsLoad(dir, /overlap/);
  });

  test('missing tensor', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    delete t['lm_head.weight'];
    writeSafetensors(join(dir, 'model.safetensors'), t);
    await rejectsLoad(dir, /checkpoint is missing tensor lm_head\.weight/);
  });

  test('tensor of the wrong shape', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    t['model.norm.weight'] = { dtype: 'F32', shape: [48], data: t['model.norm.weight'].data.subarray(0, 192) };
    writeSafetensors(join(dir, 'model.safetensors'), t);
    await rejectsLoad(dir, /tensor model\.norm\.weight has shape \[48\], expected \[96\]/);
  });

  test('weight in a dtype the runtime cannot read', async () => {
    const dir = copyModel();
    const t = tensorsOf(dir);
    t['model.norm.weight'] = { ...t['model.norm.weight'], dtype: 'I32' };
    writeSafetensors(join(dir, 'model.safetensors'), t);
    await rejectsLoad(dir, /tensor model\.norm\.weight has dtype I32; weights must be F32, F16, BF16, F8_E4M3 or I8/);
  });

  test('no safetensors file at all', async () => {
    const dir = copyModel();
    rmSync(join(dir, 'model.safetensors'));
    await rejectsLoad(dir, /holds no \.safetensors file/);
  });
});

describe('a bad config.json is refused naming the field', () => {
  const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ['unsupported architecture', (c) => (c.architectures = ['FalconForCausalLM']), /architectures .*FalconForCausalLM.* is not supported/],
    ['vocab size out of range', (c) => (c.vocab_size = -3), /vocab_size must be an integer in \[1, /],
    ['kv heads that do not divide heads', (c) => (c.num_key_value_heads = 4), /num_key_value_heads \(4\) must divide num_attention_heads \(6\)/],
    ['odd head_dim', (c) => (c.head_dim = 15), /head_dim \(15\) must be even/],
    ['non-numeric eps', (c) => (c.rms_norm_eps = 'small'), /rms_norm_eps must be a number/],
    ['unsupported rope scaling', (c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }), /'yarn' is not supported/],
    ['unsupported activation', (c) => (c.hidden_act = 'gelu'), /hidden_act 'gelu' is not supported/],
  ];
  for (const [name, edit, pattern] of cases) {
    test(name, async () => {
      const dir = copyModel();
      editConfig(dir, edit);
      await rejectsLoad(dir, pattern);
    });
  }

  test('config.json that is not JSON', async () => {
    const dir = copyModel();
    writeFileSync(join(dir, 'config.json'), '{"vocab_size": ');
    await rejectsLoad(dir, /config\.json is not valid JSON/);
  });

  test('missing model directory', async () => {
    await rejectsLoad(join(scratch, 'nowhere'), /cannot read .*config\.json/);
  });
});

describe('a bad step is refused and the runtime keeps working', () => {
  let rt: Runtime;
  before(async () => {
    rt = await Runtime.load({ modelDir: SOURCE, kvCacheBytes: KV_BYTES, maxNumTokens: 64 });
  });
  after(() => rt.close());

  const ok: Chunk = { tokens: [1, 5, 9], start: 0, blocks: [0] };
  const cases: [string, () => StepBatch, RegExp][] = [
    ['token id outside the vocabulary', () => makeBatch([{ ...ok, tokens: [1, 400] }]), /token id 400 at index 1 is outside the vocabulary of 400/],
    ['negative token id', () => makeBatch([{ ...ok, tokens: [-1] }]), /token id -1 .* outside the vocabulary/],
    ['block id outside the pool', () => makeBatch([{ ...ok, blocks: [1 << 20] }]), /block id 1048576 is outside the pool of \d+ blocks/],
    ['unset block table entry', () => makeBatch([{ ...ok, start: 20, blocks: [0, -1] }]), /block id -1 is outside the pool/],
    ['position past the context', () => makeBatch([{ ...ok, start: 510, blocks: Array(33).fill(0) }]), /position 512 is past the model's context of 512 tokens/],
    ['block table too short for the position', () => makeBatch([{ ...ok, start: 40, blocks: [0] }]), /needs 3 blocks but its block table has 1/],
    ['more tokens than max_num_tokens', () => makeBatch([{ ...ok, tokens: Array(65).fill(1), blocks: [0, 1, 2, 3, 4] }]), /65 tokens, more than the runtime's max_num_tokens of 64/],
    ['positions that are not consecutive', () => ({ ...makeBatch([ok]), positions: Int32Array.from([0, 2, 3]) }), /positions must be consecutive/],
    ['query lengths that do not add up', () => ({ ...makeBatch([ok]), queryLens: Int32Array.from([2]) }), /query lengths add up to 2 but the batch has 3 tokens/],
    ['sampling arrays of the wrong length', () => ({ ...makeBatch([ok]), topP: new Float32Array(2) }), /sampling column 'topP' must have 1 entries/],
    ['prompt lengths of the wrong length', () => ({ ...makeBatch([ok]), promptLens: Int32Array.from([3, 3]) }), /prompt_lens has 2 entries, expected 1/],
    ['a negative prompt length', () => makeBatch([{ ...ok, promptLength: -1 }]), /prompt length -1 is negative/],
    ['a penalty without a slot', () => makeBatch([{ ...ok, presencePenalty: 0.5 }]), /penalties need a penalty slot/],
    ['a penalty slot outside the pool', () => makeBatch([{ ...ok, penaltySlot: 4096, presencePenalty: 0.5 }]), /penalty slot 4096 is outside the pool/],
    ['one penalty slot for two sequences', () => makeBatch([{ ...ok, penaltySlot: 1 }, { ...ok, blocks: [1], penaltySlot: 1 }]), /penalty slot 1 is given to two sequences/],
    ['a repetition penalty of 0', () => makeBatch([{ ...ok, penaltySlot: 0, repetitionPenalty: 0 }]), /repetition penalty must be a finite number > 0/],
    ['penalty history outside the vocabulary', () => makeBatch([{ ...ok, penaltySlot: 0, history: { tokens: [1, 99999], promptLength: 1 } }]), /penalty history token 99999 is outside the vocabulary/],
    ['penalty history without a slot', () => makeBatch([{ ...ok, history: { tokens: [1], promptLength: 1 } }]), /penalty history without a penalty slot/],
    ['a mask row past the rows given', () => ({ ...makeBatch([{ ...ok, maskRow: 1 }]), numMaskRows: 1 }), /mask row 1 is outside the 1 rows given/],
    ['wrong typed array type', () => ({ ...makeBatch([ok]), tokenIds: Float64Array.from([1, 5, 9]) }) as unknown as StepBatch, /field 'tokenIds' must be a Int32Array/],
    ['negative temperature', () => makeBatch([{ ...ok, temperature: -1 }]), /temperature must be a finite number >= 0/],
    ['NaN temperature', () => makeBatch([{ ...ok, temperature: NaN }]), /temperature must be a finite number >= 0/],
    ['top_p of 0', () => makeBatch([{ ...ok, topP: 0 }]), /top_p must be in \(0, 1\]/],
    ['too many logprobs', () => makeBatch([{ ...ok, numLogprobs: 21 }]), /top logprobs must be in \[0, 20\]/],
  ];
  for (const [name, make, pattern] of cases) {
    test(name, async () => {
      await assert.rejects(rt.step(make()), pattern);
      const res = await rt.step(makeBatch([ok]));
      assert.ok(res.tokens[0] >= 0 && res.tokens[0] < 400);
    });
  }

  test('a third step while two are in flight is refused (async scheduling launches one ahead, no more)', async () => {
    const first = rt.step(makeBatch([ok]));
    const second = rt.step(makeBatch([ok]));
    await assert.rejects(rt.step(makeBatch([ok])), /two steps are already in flight/);
    await Promise.all([first, second]);
  });
});

test('a quantized KV cache is refused on the CPU backend, naming the option', async () => {
  for (const kvCacheDtype of ['fp8', 'int8'] as const)
    await assert.rejects(Runtime.load({ modelDir: DEFAULT_MODEL_DIR, kvCacheBytes: KV_BYTES, kvCacheDtype }), (e: Error) =>
      e instanceof RangeError && e.message.includes(`kvCacheDtype '${kvCacheDtype}' runs on cuda only`));
});

test('a closed runtime refuses steps', async () => {
  const rt = await Runtime.load({ modelDir: SOURCE, kvCacheBytes: KV_BYTES });
  await rt.close();
  await assert.rejects(rt.step(makeBatch([{ tokens: [1], start: 0, blocks: [0] }])), /the runtime is closed/);
});

test('a KV budget smaller than one block is refused', async () => {
  await assert.rejects(Runtime.load({ modelDir: SOURCE, kvCacheBytes: 1000 }), /holds no block/);
});

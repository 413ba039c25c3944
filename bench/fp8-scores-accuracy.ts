// What CudaKnobs.fp8PrefillScores (prompt rows' Q K^T on E4M3 tensor cores, the default for an E4M3
// cache at head_dim 128) and CudaKnobs.fp8PrefillValues (P V on them too) cost in accuracy on a
// trained model. The knob needs head_dim
// 128 and the embedded model has 64, so train a head_dim-128 twin on the GPU machine first
// (PyTorch there; about a minute):
//   python3 models/train_default_model.py $TACHYON_SHAKESPEARE /tmp/h128 --heads 2 --kv-heads 1 --steps 1500
//   node dist/bench/fp8-scores-accuracy.js /tmp/h128
// Held-out Shakespeare, teacher-forced through the prefill kernel (two-token prompt chunks,
// test/helpers/held-out.ts), BF16 weights: top-1 agreement and perplexity of the E4M3 cache with
// and without FP8 scores against the bf16 cache, and of FP8 scores against the f16 scores on the
// same cache. The bar for a quantized KV cache: top-1 at least 99%, perplexity within +0.5%.
import { Runtime, type CudaKnobs, type RuntimeOptions } from '../native/index.js';
import { corpusSkipReason, heldOutAgreement, heldOutWindows, prefillForced, type Prediction } from '../test/helpers/held-out.js';

const modelDir = process.argv[2];
if (!modelDir) throw new Error('usage: node dist/bench/fp8-scores-accuracy.js MODEL_DIR (a head_dim-128 model; see the header)');
const noCorpus = corpusSkipReason();
if (noCorpus) throw new Error(noCorpus);

async function predict(kvCacheDtype: RuntimeOptions['kvCacheDtype'], cuda: Partial<CudaKnobs>, windows: number[][]): Promise<Prediction> {
  const rt = await Runtime.load({ modelDir, device: 'cuda', dtype: 'bf16', kvCacheBytes: 64 << 20, maxNumSeqs: 256, kvCacheDtype, cuda });
  try {
    if (rt.info.headDim !== 128) throw new Error(`${modelDir}: head_dim ${rt.info.headDim}; FP8 scores need 128`);
    return await prefillForced(rt, windows);
  } finally {
    await rt.close();
  }
}

function compare(name: string, ours: Prediction, reference: Prediction, refName: string) {
  const { agree, pplRise } = heldOutAgreement(reference, ours);
  console.log(`| ${name} | ${refName} | ${(agree * 100).toFixed(2)}% | ${ours.ppl.toFixed(3)} vs ${reference.ppl.toFixed(3)} (${(pplRise * 100).toFixed(2)}%) |`);
}

const windows = heldOutWindows(modelDir);
const bf16 = await predict('auto', {}, windows);
const e4m3 = await predict('fp8', { fp8PrefillScores: false }, windows);
const fp8Scores = await predict('fp8', { fp8PrefillScores: true, fp8PrefillValues: false }, windows);
const fp8Values = await predict('fp8', { fp8PrefillScores: true, fp8PrefillValues: true }, windows);
console.log(`${modelDir}, ${bf16.top1.length} held-out positions`);
console.log('| cache | against | top-1 agreement | perplexity |');
console.log('| --- | --- | ---: | ---: |');
compare('E4M3, f16 scores', e4m3, bf16, 'bf16 cache');
compare('E4M3, FP8 scores', fp8Scores, bf16, 'bf16 cache');
compare('E4M3, FP8 scores', fp8Scores, e4m3, 'E4M3, f16 scores');
compare('E4M3, FP8 scores and values', fp8Values, bf16, 'bf16 cache');
compare('E4M3, FP8 scores and values', fp8Values, fp8Scores, 'E4M3, FP8 scores');

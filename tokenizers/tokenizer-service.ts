import { Worker } from 'node:worker_threads';

import { defaultTokenizerWorkers } from '../config/defaults.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';
import type { EncodeReply, EncodeRequest } from './tokenize-worker.js';
import { openTokenizer, type TokenizerSource } from './tokenizer-source.js';

export interface TokenizerServiceOptions {
  /** Worker threads for long texts (default: half the cores, 1 to 8, as the server's --tokenizer-workers). */
  workers?: number;
  /**
   * Texts shorter than this many characters are encoded on the calling
   * thread. At the slowest engine measured (about 2 MB/s) 16K characters is
   * under 10 ms of event-loop time; longer texts go to a worker.
   */
  inlineBelowChars?: number;
}

interface Job {
  resolve: (ids: number[]) => void;
  reject: (e: Error) => void;
  worker: number;
  chars: number;
}

/**
 * A tokenizer for the server: short texts inline, long ones on worker
 * threads, so tokenizing a 32k-token prompt never stalls other requests.
 * Each text goes to the worker with the fewest characters still to encode,
 * so a long prompt does not queue behind another on a busy worker while one
 * sits idle.
 */
export class TokenizerService {
  private readonly pending = new Map<number, Job>();
  private nextId = 0;
  /** Characters queued or being encoded, per worker; Infinity for a worker that died. */
  private readonly load: number[];

  private constructor(
    readonly tokenizer: Tokenizer,
    private readonly workers: Worker[],
    private readonly inlineBelowChars: number,
  ) {
    this.load = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.on('message', (m: EncodeReply) => this.settle(m));
      w.on('error', (e) => this.lose(i, e.message));
      w.on('exit', (code) => this.lose(i, `exited with code ${code}`));
    });
  }

  static async create(source: TokenizerSource, options: TokenizerServiceOptions = {}): Promise<TokenizerService> {
    const tokenizer = openTokenizer(source);
    // Computed here, at load, rather than in the first request that needs it.
    void tokenizer.maxTokenBytes;
    const workers = await Promise.all(Array.from({ length: options.workers ?? defaultTokenizerWorkers() }, () => startWorker(source)));
    return new TokenizerService(tokenizer, workers, options.inlineBelowChars ?? 16384);
  }

  /** Characters waiting on each worker (Infinity: the worker died), for tests and diagnostics. */
  get workerLoad(): readonly number[] {
    return this.load;
  }

  encode(text: string, options: EncodeOptions = {}): Promise<number[]> {
    const worker = text.length < this.inlineBelowChars ? -1 : this.leastBusy();
    if (worker < 0) {
      try {
        return Promise.resolve(this.tokenizer.encode(text, options));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const id = this.nextId++;
    this.load[worker] += text.length;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker, chars: text.length });
      this.workers[worker].postMessage({ id, text, options } satisfies EncodeRequest);
    });
  }

  /** The live worker with the fewest characters outstanding (the first on ties); -1 when none is left. */
  private leastBusy(): number {
    let best = -1;
    for (let i = 0; i < this.load.length; i++) if (this.load[i] !== Infinity && (best < 0 || this.load[i] < this.load[best])) best = i;
    return best;
  }

  private settle(m: EncodeReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.load[p.worker] -= p.chars;
    if ('error' in m) p.reject(new Error(m.error));
    else p.resolve(Array.from(m.ids));
  }

  /** A worker that died (out of memory, say) is gone: its jobs fail and later texts go to the others, or inline when none is left. */
  private lose(worker: number, why: string): void {
    this.load[worker] = Infinity;
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(new Error(`tokenizer worker failed: ${why}`));
    }
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.reject(new Error('tokenizer service closed'));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.tokenizer.free();
  }
}

function startWorker(source: TokenizerSource): Promise<Worker> {
  const worker = new Worker(new URL('./tokenize-worker.js', import.meta.url), { workerData: source });
  return new Promise((resolve, reject) => {
    worker.once('message', () => resolve(worker));
    worker.once('error', reject);
  });
}

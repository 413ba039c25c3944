// Time from starting the server process to /ready answering 200, with the
// embedded default model on CPU.
//   npm run bench:startup
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../native/binding.js';

async function once(port: number): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'app', 'main.js'), '--port', String(port)], { stdio: 'ignore' });
  try {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false);
      if (ok) return performance.now() - t0;
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const times: number[] = [];
for (let i = 0; i < 5; i++) times.push(await once(18000 + i));
times.sort((a, b) => a - b);
console.log(`process start to /ready (5 runs): min ${times[0].toFixed(0)} ms, median ${times[2].toFixed(0)} ms, max ${times[4].toFixed(0)} ms`);

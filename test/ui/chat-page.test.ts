// The built-in chat page in a real browser: headless Chromium (Debian's
// `chromium`, which .ci/run installs where missing) driven by puppeteer-core,
// as a person would use it. Skipped, saying why, where no Chromium is found.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

import puppeteer, { type Browser, type Page } from 'puppeteer-core';

import { startTestServer } from '../helpers/server.js';

function findChromium(): string | null {
  const given = process.env.TACHYON_CHROMIUM;
  if (given) return existsSync(given) ? given : null;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}
const chromium = findChromium();
const skip = chromium ? false : 'no Chromium found (.ci/run installs Debian\'s chromium; or set TACHYON_CHROMIUM to a Chrome or Chromium binary)';

type Server = Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
before(async () => {
  if (chromium) browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});
after(async () => {
  await browser?.close();
});

/** A fresh page on the server's chat page, collecting console errors and page errors. */
async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: 'networkidle0' });
  return { page, errors };
}

async function ask(page: Page, text: string): Promise<void> {
  await page.click('#input');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** The small model may end an answer after a few tokens; ignore_eos added to the page's requests keeps it going to max tokens. */
async function keepGoing(page: Page): Promise<void> {
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    if (!r.url().endsWith('/v1/chat/completions')) return void r.continue();
    void r.continue({ postData: JSON.stringify({ ...JSON.parse(r.postData() ?? '{}'), ignore_eos: true }) });
  });
}

const answers = (page: Page) => page.$$eval('.msg.assistant', (els) => els.map((e) => (e as HTMLElement).innerText));

describe('the chat page', { skip }, () => {
  let server: Server;
  before(async () => (server = await startTestServer()));
  after(() => server.shutdown(1000));

  test('loads with no console errors, lists the model, and streams an answer in growing pieces', async () => {
    const { page, errors } = await open(`${server.url}/`);
    assert.equal(await page.$eval('#model', (s) => (s as HTMLSelectElement).value), 'tiny-shakespeare');
    await page.click('#toggle-settings');
    await page.$eval('#max_tokens', (e) => ((e as HTMLInputElement).value = '60'));
    await keepGoing(page);
    // Every change of the answer's text, seen from inside the page as the chunks arrive.
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as unknown as { __lengths: number[] }).__lengths = seen;
      new MutationObserver(() => {
        const a = document.querySelector('.msg.assistant') as HTMLElement | null;
        if (a && a.innerText.length !== seen.at(-1)) seen.push(a.innerText.length);
      }).observe(document.getElementById('log')!, { childList: true, subtree: true, characterData: true });
    });
    await ask(page, 'Speak to me of Verona');
    await page.waitForFunction(() => document.querySelector('.stats')?.textContent, { timeout: 20000 });
    const lengths = await page.evaluate(() => (window as unknown as { __lengths: number[] }).__lengths);
    const [final] = await answers(page);
    assert.ok(final.length > 0, 'an answer');
    assert.ok(lengths.filter((n) => n > 0).length >= 3, `the answer grew in pieces: ${lengths.join(' ')}`);
    assert.match(await page.$eval(".stats", (e) => e.textContent ?? ""), /TTFT \d+ ms · 60 tokens · [\d.]+ tok\/s/, "the settings' max tokens reached the server");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('a second turn carries the history; New chat clears it', async () => {
    const { page } = await open(`${server.url}/ui`);
    const bodies: { messages: { role: string; content: string }[] }[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/v1/chat/completions')) bodies.push(JSON.parse(r.postData() ?? '{}'));
    });
    const idle = () => page.waitForFunction(() => !(document.getElementById('send') as HTMLButtonElement).disabled, { timeout: 20000 });
    await ask(page, 'First question');
    await idle();
    await ask(page, 'Second question');
    await idle();
    assert.deepEqual(bodies[1].messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(bodies[1].messages[1].content.trim(), (await answers(page))[0].trim());
    await page.click('#new');
    await ask(page, 'Fresh start');
    await idle();
    assert.deepEqual(bodies[2].messages.map((m) => m.role), ['user']);
    await page.close();
  });

  test('Stop aborts the request and the server cancels the sequence', async () => {
    const { page } = await open(`${server.url}/`);
    await page.$eval('#max_tokens', (e) => ((e as HTMLInputElement).value = '900'));
    await keepGoing(page);
    await ask(page, 'Tell a long tale');
    await page.waitForFunction(() => (document.querySelector('.msg.assistant') as HTMLElement | null)?.innerText.length, { timeout: 20000 });
    assert.equal(server.deps.engine.stats().running, 1);
    await page.click('#stop');
    const deadline = Date.now() + 3000;
    while (server.deps.engine.stats().running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.deps.engine.stats().running, 0);
    assert.equal(server.deps.engine.stats().kvBlocksUsed, 0);
    assert.match(await page.$eval('.stats', (e) => e.textContent ?? ''), /stopped/);
    await page.close();
  });

  test('model output with <script> and HTML is shown as text, never run', async () => {
    const { page } = await open(`${server.url}/`);
    // The model's answer, whatever it is, comes through this SSE body: the page cannot tell.
    await page.setRequestInterception(true);
    const evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> and `<b>code</b>`';
    page.on('request', (r) => {
      if (!r.url().endsWith('/v1/chat/completions')) return void r.continue();
      const chunk = { choices: [{ index: 0, delta: { content: evil } }] };
      void r.respond({ status: 200, contentType: 'text/event-stream', body: `data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n` });
    });
    await ask(page, 'hi');
    await page.waitForFunction(() => !(document.getElementById('send') as HTMLButtonElement).disabled);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.equal(await page.$$eval('.msg.assistant script, .msg.assistant img, .msg.assistant b', (els) => els.length), 0);
    assert.match((await answers(page))[0], /<script>window.__pwned = 1<\/script>/);
    await page.close();
  });
});

describe('the chat page with API keys', { skip }, () => {
  let server: Server;
  before(async () => (server = await startTestServer({ apiKeys: ['sesame'] })));
  after(() => server.shutdown(1000));

  test('asks for a key on 401, keeps it in local storage, then chats', async () => {
    const { page, errors } = await open(`${server.url}/`);
    assert.ok(await page.$eval('#keybar', (e) => e.classList.contains('open')), 'the key bar shows');
    assert.match(await page.$eval('#keymsg', (e) => e.textContent ?? ''), /needs an API key \(401\)/);
    await page.type('#apikey', 'sesame');
    await page.click('#savekey');
    await page.waitForFunction(() => (document.getElementById('model') as HTMLSelectElement).value === 'tiny-shakespeare');
    assert.equal(await page.evaluate(() => localStorage.getItem('tachyon-api-key')), 'sesame');
    await ask(page, 'Hello');
    await page.waitForFunction(() => !(document.getElementById('send') as HTMLButtonElement).disabled, { timeout: 20000 });
    assert.ok((await answers(page))[0].length > 0);
    // A wrong key: the page says so.
    await page.evaluate(() => localStorage.setItem('tachyon-api-key', 'wrong'));
    await ask(page, 'Again');
    await page.waitForFunction(() => document.querySelector('.msg.error') !== null);
    assert.match(await page.$eval('.msg.error', (e) => e.textContent ?? ''), /401/);
    assert.deepEqual(errors.filter((e) => !/401/.test(e)), []);
    await page.close();
  });
});

/** A reverse proxy that serves `target` under /tachyon/ (the prefix is stripped), as nginx would. */
async function prefixProxy(target: string): Promise<{ url: string; close: () => Promise<void> }> {
  const t = new URL(target);
  const proxy: HttpServer = createServer((req, res) => {
    if (!req.url?.startsWith('/tachyon/')) {
      res.writeHead(404).end();
      return;
    }
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url.slice('/tachyon'.length), headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, close: () => new Promise((r) => {
    proxy.close(() => r());
    proxy.closeAllConnections();  // the browser keeps its connections open
  }) };
}

describe('the chat page behind a path prefix, on a server with CORS settings', { skip }, () => {
  test('every request stays under the prefix and a message streams back', async () => {
    const server = await startTestServer({ corsOrigins: ['https://elsewhere.example'] });
    const proxy = await prefixProxy(server.url);
    try {
      const { page, errors } = await open(`${proxy.url}/tachyon/`);
      const paths: string[] = [];
      page.on('request', (r) => void paths.push(new URL(r.url()).pathname));
      assert.equal(await page.$eval('#model', (s) => (s as HTMLSelectElement).value), 'tiny-shakespeare');
      await ask(page, 'Hail');
      await page.waitForFunction(() => document.querySelector('.stats')?.textContent, { timeout: 20000 });
      assert.ok((await answers(page))[0].length > 0);
      assert.ok(paths.length > 0 && paths.every((p) => p.startsWith('/tachyon/')), paths.join(' '));
      assert.deepEqual(errors, []);
      await page.close();
    } finally {
      await proxy.close();
      await server.shutdown(1000);
    }
  });
});

test('--no-ui leaves the page out: / is a 404', async () => {
  const server = await startTestServer({ ui: false });
  try {
    assert.equal((await fetch(`${server.url}/`)).status, 404);
    assert.equal((await fetch(`${server.url}/ui`)).status, 404);
  } finally {
    await server.shutdown(1000);
  }
});

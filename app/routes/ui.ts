import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Hono } from 'hono';

import { packageRoot } from '../../native/binding.js';

/**
 * The built-in chat page (app/ui/index.html) at / and /ui, and its Markdown
 * renderer (app/ui/markdown.ts, compiled) at /ui/markdown.js. Both are read
 * once at start; nothing is fetched from outside the server. --no-ui leaves
 * these routes out.
 */
export function uiRoutes(app: Hono): void {
  const root = packageRoot();
  const page = readFileSync(join(root, 'app', 'ui', 'index.html'), 'utf8');
  const markdown = readFileSync(join(root, 'dist', 'app', 'ui', 'markdown.js'), 'utf8');
  const html = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' };
  app.get('/', (c) => c.body(page, 200, html));
  app.get('/ui', (c) => c.body(page, 200, html));
  // The page's relative URLs assume /ui without a trailing slash.
  app.get('/ui/', (c) => c.redirect('../ui', 301));
  app.get('/ui/markdown.js', (c) => c.body(markdown, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }));
}

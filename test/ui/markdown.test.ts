// The chat page's Markdown renderer (app/ui/markdown.ts): markup for answers, never HTML from them.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { renderMarkdown } from '../../app/ui/markdown.js';

test('code blocks, inline code, emphasis, headings and lists become markup', () => {
  assert.equal(renderMarkdown('# Title\nSome **bold** and *it* with `x < y`.'), '<h1>Title</h1><p>Some <strong>bold</strong> and <em>it</em> with <code>x &lt; y</code>.</p>');
  assert.equal(renderMarkdown('- one\n- two\n\n1. first\n2. second'), '<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>');
  assert.equal(renderMarkdown('```js\nif (a < b) {}\n```\nafter'), '<pre><code class="language-js">if (a &lt; b) {}</code></pre><p>after</p>');
  // Still streaming: an open fence runs to the end.
  assert.equal(renderMarkdown('```\npartial'), '<pre><code>partial</code></pre>');
});

test('HTML in model output is text: no element, attribute or script gets through', () => {
  const out = renderMarkdown('<script>alert(1)</script> <img src=x onerror="alert(2)"> **<b>x</b>**');
  assert.ok(!/<script|<img|<b>/i.test(out), out);
  assert.match(out, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(out, /onerror=&quot;alert\(2\)&quot;/);
  assert.equal(renderMarkdown('```html\n<script>x</script>\n```'), '<pre><code class="language-html">&lt;script&gt;x&lt;/script&gt;</code></pre>');
});

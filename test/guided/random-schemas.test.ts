// A property: for random bounded JSON schemas (fast-check), a guided answer
// from the default model through HTTP that ends on its own (finish_reason
// stop) is JSON valid against the schema. Bounded: strings have maxLength,
// a bounded pattern or an enum (the default model never learned to close a double quote), arrays
// maxItems, nesting three levels.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Ajv } from 'ajv';
import fc from 'fast-check';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.shutdown(1000));

const name = fc.oneof(fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/), fc.constantFrom('with space', 'quo"te', 'émigré', 'back\\slash'));
const text = fc.constantFrom('Ay', 'nay', 'say "no"', 'émigré', 'tab\there', 'line\nbreak', '😀', '');

const { schema } = fc.letrec<{ schema: object; leaf: object; object: object; array: object }>((tie) => ({
  leaf: fc.oneof(
    fc.record({ type: fc.constant('boolean') }),
    fc.record({ type: fc.constant('null') }),
    fc.integer({ min: -50, max: 50 }).chain((lo) => fc.record({ type: fc.constant('integer'), minimum: fc.constant(lo), maximum: fc.integer({ min: lo, max: lo + 1000 }) })),
    fc.record({ type: fc.constant('string'), maxLength: fc.integer({ min: 0, max: 8 }) }),
    // A negated class lets in whatever is not named, quotes and control characters included, unless narrowed.
    fc.record({ type: fc.constant('string'), pattern: fc.constantFrom('^[^a]{1,3}$', '^[^"x]{0,4}$') }),
    fc.uniqueArray(text, { minLength: 1, maxLength: 4 }).map((e) => ({ enum: e })),
  ),
  object: fc
    .uniqueArray(fc.tuple(name, tie('schema')), { minLength: 1, maxLength: 4, selector: ([k]) => k })
    .chain((props) =>
      fc.subarray(props.map(([k]) => k)).map((required) => ({ type: 'object', properties: Object.fromEntries(props), required, additionalProperties: false })),
    ),
  array: fc.record({ type: fc.constant('array'), items: tie('schema'), minItems: fc.integer({ min: 0, max: 1 }), maxItems: fc.integer({ min: 1, max: 3 }) }),
  schema: fc.oneof({ depthSize: 'small', maxDepth: 3 }, tie('leaf'), tie('object'), tie('array')),
}));

test('random bounded schemas: every answer that ends on its own validates', async () => {
  const ajv = new Ajv({ strict: false });
  let stopped = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.record({ type: fc.constant('object'), properties: fc.record({ answer: schema }), required: fc.constant(['answer']), additionalProperties: fc.constant(false) }), fc.integer({ min: 1, max: 1000 }), async (s, seed) => {
      runs++;
      const r = await postJson(`${server.url}/v1/chat/completions`, {
        model: 'tiny-shakespeare',
        messages: [{ role: 'user', content: 'Answer.' }],
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: s, strict: true } },
        seed,
        max_tokens: 250,
      });
      assert.equal(r.status, 200, await r.clone().text());
      const choice = ((await r.json()) as { choices: { message: { content: string }; finish_reason: string }[] }).choices[0];
      if (choice.finish_reason !== 'stop') return;
      stopped++;
      const value = JSON.parse(choice.message.content);
      const validate = ajv.compile(s);
      assert.ok(validate(value), `${choice.message.content} against ${JSON.stringify(s)}: ${JSON.stringify(validate.errors)}`);
    }),
    { numRuns: 40, seed: Number(process.env.TACHYON_FC_SEED ?? 20261202) },
  );
  // Bounded schemas end on their own nearly always; a property over answers that all ran out would prove nothing.
  assert.ok(stopped >= runs * 0.75, `only ${stopped} of ${runs} answers ended on their own`);
});

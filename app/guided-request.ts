import { z } from 'zod';

import type { TokenGuide } from '../engine/types.js';
import { GuideError, type GuideSpec } from '../guided/spec.js';
import type { ServerDeps } from './deps.js';
import { badRequest } from './errors.js';

/**
 * The request fields that constrain output to a grammar, on chat and
 * completions: OpenAI's response_format and vLLM's structured_outputs
 * extension. Forced tool calls become a spec too (app/tool-calls/forced.ts).
 */
const jsonSchema = z.union([z.record(z.string(), z.unknown()), z.boolean()]);

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z
        .object({
          // OpenAI requires a name; it only labels the schema, so a missing one is accepted (as vLLM does).
          name: z.string().nullish(),
          description: z.string().nullish(),
          schema: jsonSchema,
          // Output follows the schema either way (xgrammar's strict mode: no properties the schema does not list).
          strict: z.boolean().nullish(),
        })
        .strict(),
    })
    .strict(),
]);

const structuredOutputs = z
  .object({
    json: z.union([z.string(), jsonSchema]).nullish(),
    regex: z.string().nullish(),
    choice: z.array(z.string()).min(1).nullish(),
    grammar: z.string().min(1).nullish(),
    json_object: z.boolean().nullish(),
    // Accepted: output is always written without optional whitespace.
    disable_any_whitespace: z.boolean().nullish(),
  })
  .strict();

export const guidedFields = {
  response_format: responseFormat.nullish(),
  structured_outputs: structuredOutputs.nullish(),
};

type Fields = { [K in keyof typeof guidedFields]?: z.infer<(typeof guidedFields)[K]> };

/** What the request's output must follow, and the parameter that asked (for errors); null when unconstrained. */
export interface GuideRequest {
  spec: GuideSpec;
  param: string;
}

export function guideRequestOf(b: Fields): GuideRequest | null {
  const so = b.structured_outputs;
  const rf = b.response_format;
  const fromRf = rf == null || rf.type === 'text' ? null : rf;
  if (so != null) {
    if (fromRf) throw badRequest('send either response_format or structured_outputs, not both', 'structured_outputs');
    return structuredOutputsSpec(so);
  }
  if (!fromRf) return null;
  if (fromRf.type === 'json_object') return { spec: { kind: 'json_object' }, param: 'response_format' };
  return { spec: { kind: 'json_schema', schema: fromRf.json_schema.schema }, param: 'response_format.json_schema.schema' };
}

function structuredOutputsSpec(so: NonNullable<Fields['structured_outputs']>): GuideRequest {
  const given = (['json', 'regex', 'choice', 'grammar', 'json_object'] as const).filter((k) => so[k] != null && so[k] !== false);
  if (given.length !== 1)
    throw badRequest(`structured_outputs needs exactly one of json, regex, choice, grammar or json_object; got ${given.length === 0 ? 'none' : given.join(', ')}`, 'structured_outputs');
  const key = given[0];
  const param = `structured_outputs.${key}`;
  switch (key) {
    case 'json': {
      let schema = so.json;
      if (typeof schema === 'string') {
        try {
          schema = JSON.parse(schema) as unknown as typeof schema;
        } catch (e) {
          throw badRequest(`${param} is not valid JSON: ${(e as Error).message}`, param);
        }
      }
      return { spec: { kind: 'json_schema', schema }, param };
    }
    case 'regex':
      return { spec: { kind: 'regex', pattern: so.regex! }, param };
    case 'choice':
      return { spec: { kind: 'choice', choices: so.choice! }, param };
    case 'grammar':
      return { spec: { kind: 'grammar', ebnf: so.grammar! }, param };
    case 'json_object':
      return { spec: { kind: 'json_object' }, param };
  }
}

/**
 * One guide per choice, all from one compile. A spec the grammar engine
 * refuses is a 400 naming the parameter, with the engine's reason.
 */
export async function guidesFor(deps: ServerDeps, request: GuideRequest, count: number): Promise<TokenGuide[]> {
  const guides: TokenGuide[] = [];
  try {
    const service = await deps.grammars();
    for (let i = 0; i < count; i++) guides.push(await service.guide(request.spec));
    return guides;
  } catch (e) {
    for (const g of guides) g.dispose();
    if (e instanceof GuideError) throw badRequest(`${request.param}: ${e.message}`, request.param, 'invalid_grammar');
    throw e;
  }
}

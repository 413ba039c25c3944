import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';

import { pythonRepr } from './python-repr.js';
import { strftime } from './strftime.js';

/** A template refused the conversation (raise_exception) or failed to render: the caller's fault, a 400. */
export class ChatTemplateError extends Error {}

export interface ChatMessage {
  role: string;
  content?: string | null;
  [key: string]: unknown;
}

export interface RenderOptions {
  messages: ChatMessage[];
  addGenerationPrompt?: boolean;
  tools?: unknown[] | null;
  bosToken?: string | null;
  eosToken?: string | null;
  /** The clock strftime_now reads; defaults to now. */
  now?: Date;
  /** Extra variables templates may read (date_string, documents, ...). */
  extra?: Record<string, unknown>;
}

/** A chat template from tokenizer_config.json, rendered with @huggingface/jinja as transformers renders it. */
export class ChatTemplate {
  private readonly program: ReturnType<typeof parse>;

  constructor(readonly source: string) {
    try {
      // The block trimming transformers configures its Jinja environment with.
      this.program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
    } catch (e) {
      throw new Error(`chat template does not parse: ${(e as Error).message}`);
    }
  }

  render(o: RenderOptions): string {
    const now = o.now ?? new Date();
    const context: Record<string, unknown> = {
      false: false,
      true: true,
      none: null,
      False: false,
      True: true,
      None: null,
      range,
      ...o.extra,
      messages: o.messages,
      add_generation_prompt: o.addGenerationPrompt ?? false,
      bos_token: o.bosToken ?? '',
      eos_token: o.eosToken ?? '',
      raise_exception: (message: string) => {
        throw new ChatTemplateError(message);
      },
      strftime_now: (format: string) => strftime(format, now),
    };
    if (o.tools) context.tools = o.tools;
    try {
      // Template.render would pre-declare its own raise_exception and a
      // locale-dependent strftime_now; an Environment of our own holds ours.
      const env = new Environment();
      for (const [k, v] of Object.entries(context)) env.set(k, v);
      return pythonInterpreter(env).run(this.program).value as string;
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e;
      throw new ChatTemplateError(`chat template failed to render: ${(e as Error).message}`);
    }
  }
}

interface RuntimeValue {
  type: string;
  value: unknown;
}
type ApplyFilter = (operand: RuntimeValue, filter: { type: string; value?: unknown }, env: Environment) => RuntimeValue;
let containersPatched = false;

/**
 * @huggingface/jinja prints lists and dicts as JSON; transformers (Python
 * Jinja) prints them with str(). `|string` and `{{ value }}` get Python's form.
 * applyFilter is private in the typings, so it is wrapped on the instance.
 */
function pythonInterpreter(env: Environment): Interpreter {
  if (!containersPatched) patchContainerStrings();
  const interpreter = new Interpreter(env);
  const inner = interpreter as unknown as { applyFilter: ApplyFilter };
  const base = inner.applyFilter.bind(interpreter);
  inner.applyFilter = (operand, filter, scope) => {
    const out = base(operand, filter, scope);
    const isContainer = operand.type === 'ArrayValue' || operand.type === 'ObjectValue';
    if (isContainer && filter.type === 'Identifier' && filter.value === 'string') out.value = pythonRepr(operand);
    return out;
  };
  return interpreter;
}

/** Printing a list or dict in {{ }} calls its toString(); the classes are not exported, so reach them through values. */
function patchContainerStrings(): void {
  const probe = new Environment();
  probe.set('a', []);
  probe.set('o', {});
  for (const name of ['a', 'o'])
    (probe.lookupVariable(name).constructor.prototype as { toString(): string }).toString = function (this: RuntimeValue) {
      return pythonRepr(this);
    };
  containersPatched = true;
}

function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/**
 * The template a tokenizer_config.json names: a string, or a list of
 * {name, template} where "tool_use" is taken when tools are given and
 * "default" otherwise (transformers' rule).
 */
export function chatTemplateSource(config: Record<string, unknown>, withTools = false): string | null {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (!Array.isArray(t)) return null;
  const named = new Map(t.map((x: { name: string; template: string }) => [x.name, x.template]));
  return (withTools && named.get('tool_use')) || named.get('default') || null;
}

import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';

import type * as XGrammar from '@mlc-ai/web-xgrammar';

/**
 * The xgrammar grammar engine (@mlc-ai/web-xgrammar: its C++ core built to
 * WebAssembly), loaded for Node.
 *
 * The package cannot be imported as it is: lib/index.js is a UMD bundle that
 * calls require() inside a package marked "type": "module", so Node reads it
 * as an ES module and fails. It is evaluated here as the CommonJS it is, with
 * two lines changed (the version is pinned exactly in package.json for them):
 * - the binding is handed out, because the package's getNextTokenBitmask is
 *   async (and copies the mask twice) while masks are filled synchronously,
 *   through the binding's GetNextTokenBitmask and a view of its memory;
 * - the Emscripten module gets our printErr, because a grammar the engine
 *   cannot compile aborts the WebAssembly call and the reason is only printed.
 *
 * Each call gives a separate engine with its own memory. That matters: an
 * abort skips the C++ unwinding, so it leaks heap and, worse, never restores
 * the WebAssembly stack pointer; about twenty aborts exhaust the stack and the
 * engine fails with "memory access out of bounds". Whatever may abort is
 * tried first in an engine that is thrown away after it does
 * (guided/grammar-service.ts).
 */
export type XGrammarModule = typeof XGrammar;

/** The parts of the Emscripten binding used directly. */
export interface XGrammarBinding {
  /** A view of a std::vector<int32_t> in WebAssembly memory; valid until the vector is deleted or the memory grows. */
  vecIntToView(vec: NativeIntVector): Int32Array;
}

export interface NativeIntVector {
  delete(): void;
}

export interface XGrammarEngine {
  xg: XGrammarModule;
  binding: XGrammarBinding;
  /** What the engine printed as its reason for the last abort, without the C++ source location; cleared by the call. */
  takeError(): string | undefined;
}

const PATCHES: [string, string][] = [
  ['exports.default = index;', 'exports.default = index;\nexports.binding = async () => { await asyncInitBinding(); return binding; };'],
  ['binding = await Module();', 'binding = await Module(exports.moduleArgs);'],
];

let patched: { file: string; source: string } | undefined;

function patchedSource(): { file: string; source: string } {
  if (patched) return patched;
  const file = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar/lib/index.js');
  let source = readFileSync(file, 'utf8');
  for (const [from, to] of PATCHES) {
    if (!source.includes(from)) throw new Error(`@mlc-ai/web-xgrammar at ${file} is not the version this server was built against (no '${from}'); install the version package.json pins`);
    source = source.replace(from, to);
  }
  patched = { file, source };
  return patched;
}

/** "[FATAL] /path/json_schema_converter.cc:902: Unsupported type "nope"" -> 'Unsupported type "nope"'. */
export function reasonOf(line: string): string {
  return line
    .replace(/^\[FATAL\]\s+\S+:\d+:\s*/, '')
    .replace(/^Check failed: \(.*?\) is false:\s*/, '')
    .trim();
}

export async function createXGrammarEngine(): Promise<XGrammarEngine> {
  const { file, source } = patchedSource();
  let lastError: string | undefined;
  const m = new Module(file) as Module & { _compile(code: string, filename: string): void; paths: string[] };
  m.filename = file;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(file);
  m._compile(source, file);
  const exports = m.exports as XGrammarModule & { moduleArgs: unknown; binding(): Promise<XGrammarBinding> };
  exports.moduleArgs = {
    print: () => {},
    printErr: (line: string) => {
      if (line.startsWith('[FATAL]')) lastError = reasonOf(line);
    },
  };
  const binding = await exports.binding();
  return {
    xg: exports,
    binding,
    takeError: () => {
      const e = lastError;
      lastError = undefined;
      return e;
    },
  };
}

/**
 * Where the JSON object or array opening at text[start] ends (the index after
 * its closing bracket), or null while it is still open. Brackets inside
 * strings do not count; whether it is valid JSON is JSON.parse's business.
 */
export function jsonEnd(text: string, start: number): number | null {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return null;
}

/**
 * Whether text begins with these tokens, each optionally preceded by
 * whitespace: 'yes', 'no', or 'maybe' while text is too short to tell.
 * ('{', '"name"') tells `{ "name"` apart from `{"x"` after a few characters.
 */
export function startsWithTokens(text: string, tokens: string[]): 'yes' | 'no' | 'maybe' {
  let i = 0;
  for (const token of tokens) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (i === text.length) return 'maybe';
    const part = text.slice(i, i + token.length);
    if (part !== token) return i + part.length === text.length && token.startsWith(part) ? 'maybe' : 'no';
    i += token.length;
  }
  return 'yes';
}

/** Length of the longest end of text that is a proper start of marker (held back: it may be markup). */
export function partialMarker(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) if (marker.startsWith(text.slice(text.length - n))) return n;
  return 0;
}

/**
 * {name, <argsKey>: {...}} as a call, or null when it is not one. Arguments
 * given as a JSON string holding an object are accepted too; missing
 * arguments are {}.
 */
export function callOf(value: unknown, argsKeys: string[], argsOptional = false): { name: string; arguments: string } | null {
  if (!isObject(value) || typeof value.name !== 'string' || value.name.length === 0) return null;
  const key = argsKeys.find((k) => k in value);
  // Outside explicit markup, a JSON answer like {"name": "Alice", "age": 30} is text, not a call.
  if (key === undefined && !argsOptional) return null;
  let args: unknown = key === undefined ? {} : value[key];
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return null;
    }
  }
  return isObject(args) ? { name: value.name, arguments: JSON.stringify(args) } : null;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

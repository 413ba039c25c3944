import type { TokenLogprob } from '../engine/types.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** A token as text for logprob listings (its bytes read as UTF-8, lossy). */
function tokenText(tok: Tokenizer, id: number): { text: string; bytes: number[] } {
  const bytes = tok.tokenBytes(id);
  return { text: bytes.toString('utf8'), bytes: [...bytes] };
}

/** Chat's choice.logprobs.content entries. */
export function chatLogprobs(tok: Tokenizer, lps: TokenLogprob[]) {
  return lps.map((lp) => {
    const t = tokenText(tok, lp.token);
    return {
      token: t.text,
      logprob: lp.logprob,
      bytes: t.bytes,
      top_logprobs: lp.top.map((x) => {
        const u = tokenText(tok, x.token);
        return { token: u.text, logprob: x.logprob, bytes: u.bytes };
      }),
    };
  });
}

/** Completions' legacy logprobs object; offsets count from the start of this choice's text. */
export function completionLogprobs(tok: Tokenizer, lps: TokenLogprob[], startOffset: number) {
  let offset = startOffset;
  const out = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
  for (const lp of lps) {
    const t = tokenText(tok, lp.token).text;
    out.tokens.push(t);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top.map((x) => [tokenText(tok, x.token).text, x.logprob])));
    out.text_offset.push(offset);
    offset += t.length;
  }
  return out;
}

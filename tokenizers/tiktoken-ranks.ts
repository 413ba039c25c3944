import { fromByteLevel } from './byte-alphabet.js';
import { bpeWord, type BpeModel } from './bpe.js';

/**
 * tiktoken merges by the rank of the merged token and picks the leftmost pair
 * on ties; HF BPE merges by the index of the merge rule. The two agree when a
 * byte-level vocabulary satisfies the conditions checked here; otherwise
 * toTiktokenRanks throws, naming the first token that breaks them.
 */
export class NotTiktokenExpressible extends Error {}

function fail(problem: string): never {
  throw new NotTiktokenExpressible(`tokenizer merges cannot be expressed as tiktoken ranks: ${problem}`);
}

/**
 * tiktoken's rank file text ("base64 rank" lines), ranks being the token ids.
 * strict: also refuse vocabularies where rules that make the same token could
 * be applied in a different order (HF: lowest rule index; tiktoken: leftmost).
 * Tokenizers converted from tiktoken (Llama 3, Qwen2, cl100k) have such rules;
 * without strict they run with tiktoken's own order, which is how their
 * vocabularies were made.
 */
export function toTiktokenRanks(model: BpeModel, mergeList: [string, string][], strict = true): string {
  const { vocab } = model;
  const idToken = new Map<number, string>();
  for (const [tok, id] of vocab) idToken.set(id, tok);
  const byteKeys = new Map<string, number>(); // latin1 key of the token's bytes -> id
  for (const [tok, id] of vocab) {
    const key = fromByteLevel(tok).toString('latin1');
    if (byteKeys.has(key)) fail(`two tokens have the same bytes (${JSON.stringify(tok)})`);
    byteKeys.set(key, id);
  }
  for (let b = 0; b < 256; b++) if (!byteKeys.has(String.fromCharCode(b))) fail(`byte ${b} has no token`);
  checkRankOrder(vocab, mergeList);
  const sameTokenRules = checkClosure(byteKeys, vocab, mergeList);
  if (strict) checkRuleOrder(sameTokenRules);
  if (!model.ignoreMerges) checkWholeTokens(model, idToken);
  return [...byteKeys].map(([key, id]) => `${Buffer.from(key, 'latin1').toString('base64')} ${id}`).join('\n');
}

/** Merges must come in order of the merged token's id: tiktoken's priority is that id. */
function checkRankOrder(vocab: Map<string, number>, merges: [string, string][]): void {
  let last = -1;
  for (const [a, b] of merges) {
    const id = vocab.get(a + b)!;
    if (id < last) fail(`merge (${JSON.stringify(a)}, ${JSON.stringify(b)}) comes after a merge of a higher-ranked token`);
    last = id;
  }
}

type RulesByToken = Map<number, { left: number; right: number; index: number }[]>;

/** tiktoken merges any adjacent pair whose concatenation is a token, so every such pair must be a merge rule. */
function checkClosure(byteKeys: Map<string, number>, vocab: Map<string, number>, merges: [string, string][]): RulesByToken {
  const rules = new Map<string, number>();
  const byToken = new Map<number, { left: number; right: number; index: number }[]>();
  merges.forEach(([a, b], index) => {
    const left = vocab.get(a)!;
    const right = vocab.get(b)!;
    const key = `${left} ${right}`;
    if (rules.has(key)) return;
    rules.set(key, index);
    const id = vocab.get(a + b)!;
    const list = byToken.get(id) ?? [];
    list.push({ left, right, index });
    byToken.set(id, list);
  });
  for (const [key, id] of byteKeys) {
    for (let i = 1; i < key.length; i++) {
      const left = byteKeys.get(key.slice(0, i));
      const right = byteKeys.get(key.slice(i));
      if (left !== undefined && right !== undefined && !rules.has(`${left} ${right}`))
        fail(`token ${id} can be formed from tokens ${left} + ${right}, which is not a merge rule`);
    }
  }
  return byToken;
}

/** Where rules (p, m) and (m, q) make the same token, HF's rule order must match tiktoken's leftmost choice. */
function checkRuleOrder(byToken: RulesByToken): void {
  for (const [id, list] of byToken) {
    for (const a of list)
      for (const b of list)
        if (a.right === b.left && b.index < a.index)
          fail(`token ${id} has overlapping merge rules whose order differs from tiktoken's leftmost-first`);
  }
}

/** Without ignore_merges, HF runs BPE even on a piece that is itself a token; tiktoken returns it whole. */
function checkWholeTokens(model: BpeModel, idToken: Map<number, string>): void {
  for (const [id, tok] of idToken) {
    if ([...tok].length < 2) continue;
    const ids = bpeWord(model, tok);
    if (ids.length !== 1 || ids[0] !== id) fail(`token ${id} (${JSON.stringify(tok)}) does not merge back into itself`);
  }
}

// The narrowing of xgrammar's JSON-string character classes (guided/json-string-classes.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { jsonSafeCharacterClasses } from '../../guided/json-string-classes.js';

test("negated and any-character classes lose quotes, backslashes and control characters; literals and lookaheads keep theirs", () => {
  const ebnf = String.raw`string ::= "\"" [\u0000-\U0010FFFF]{0,3} "\""
bounded ::= "\"" [^"\\\r\n]{0,2} "\""
negated ::= "\"" [^q]+ "\""
positive ::= [a-z]+
literal ::= ("\"x[^y\\\"z\"")
sub ::= ("\"" | [^\0-\x1f\"\\\r\n] sub) (= [ \n\t]* [,}\]:])`;
  assert.equal(
    jsonSafeCharacterClasses(ebnf),
    String.raw`string ::= "\"" [^\0-\x1f"\\]{0,3} "\""
bounded ::= "\"" [^\0-\x1f"\\"\\\r\n]{0,2} "\""
negated ::= "\"" [^\0-\x1f"\\q]+ "\""
positive ::= [a-z]+
literal ::= ("\"x[^y\\\"z\"")
sub ::= ("\"" | [^\0-\x1f"\\\0-\x1f\"\\\r\n] sub) (= [ \n\t]* [,}\]:])`,
  );
});

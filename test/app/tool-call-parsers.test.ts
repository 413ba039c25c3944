// The tool-call parsers, fed whole, split at every character boundary and
// char by char: the content and calls must not depend on how text arrives.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { detectToolCallParser, newToolCallParser, type ToolCallParserName } from '../../app/tool-calls/index.js';
import { NamedCallParser, RequiredCallsParser } from '../../app/tool-calls/forced.js';
import type { NewCallId, ParsedCall, ToolCallParser } from '../../app/tool-calls/types.js';

interface Result {
  content: string;
  calls: Omit<ParsedCall, 'id'>[];
}

type Make = ToolCallParserName | ((newId: NewCallId) => ToolCallParser);

function run(make: Make, pieces: string[]): Result {
  let n = 0;
  const newId = () => `call_${n++}`;
  const p = typeof make === 'string' ? newToolCallParser(make, newId) : make(newId);
  const r: Result = { content: '', calls: [] };
  for (const out of [...pieces.map((t) => p.feed(t)), p.end()]) {
    r.content += out.content ?? '';
    for (const c of out.calls ?? []) {
      assert.equal(c.id, `call_${c.index}`);
      r.calls.push({ index: c.index, name: c.name, arguments: c.arguments });
    }
  }
  return r;
}

/** The result of the whole text, checked to be the same however the text is split. */
function parse(name: Make, text: string): Result {
  const whole = run(name, [text]);
  for (let i = 0; i <= text.length; i++) assert.deepEqual(run(name, [text.slice(0, i), text.slice(i)]), whole, `split at ${i}`);
  assert.deepEqual(run(name, [...text]), whole, 'char by char');
  return whole;
}

const call = (index: number, name: string, args: object) => ({ index, name, arguments: JSON.stringify(args) });

describe('hermes', () => {
  test('text before and after, two calls', () => {
    const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>\nDone.';
    assert.deepEqual(parse('hermes', text), { content: 'Let me check.\nDone.', calls: [call(0, 'get_weather', { city: 'Paris' }), call(1, 'get_time', { tz: 'CET' })] });
  });
  test('only a call: no content; arguments re-serialized', () => {
    assert.deepEqual(parse('hermes', '<tool_call>\n{ "name" : "f", "arguments" : { "a" : [1, 2] } }\n</tool_call>'), { content: '', calls: [call(0, 'f', { a: [1, 2] })] });
  });
  test('invalid JSON inside markup is content', () => {
    const text = 'x <tool_call>{"name": "f", "arguments": {oops}}</tool_call> y';
    assert.deepEqual(parse('hermes', text), { content: text, calls: [] });
  });
  test('an unclosed block: a call if its JSON is complete, else content', () => {
    assert.deepEqual(parse('hermes', '<tool_call>\n{"name": "f", "arguments": {}}\n'), { content: '', calls: [call(0, 'f', {})] });
    assert.deepEqual(parse('hermes', 'a <tool_call>\n{"name": "f", "argu'), { content: 'a <tool_call>\n{"name": "f", "argu', calls: [] });
  });
  test('markup prefixes that are not markup stay text', () => {
    for (const text of ['a <tool and <tool_cal', 'x < y', '<tool_callx>', 'ends with <tool_c']) assert.deepEqual(parse('hermes', text), { content: text, calls: [] });
  });
  test('plain text keeps its whitespace', () => {
    assert.deepEqual(parse('hermes', '  Hello,\n world!\n'), { content: '  Hello,\n world!\n', calls: [] });
  });
});

describe('llama3_json', () => {
  test('one call, with and without <|python_tag|>', () => {
    const json = '{"name": "get_weather", "parameters": {"city": "Paris"}}';
    for (const text of [json, `<|python_tag|>${json}`, ` \n${json}\n`]) assert.deepEqual(parse('llama3_json', text), { content: '', calls: [call(0, 'get_weather', { city: 'Paris' })] });
  });
  test('two calls separated by ;', () => {
    assert.deepEqual(parse('llama3_json', '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}'), { content: '', calls: [call(0, 'a', { x: 1 }), call(1, 'b', {})] });
  });
  test('text after a call is content', () => {
    assert.deepEqual(parse('llama3_json', '{"name": "a", "parameters": {}} and more'), { content: 'and more', calls: [call(0, 'a', {})] });
  });
  test('answers that are not calls are text', () => {
    for (const text of ['Hello {"name": "a"}', '{"x": 1}', '{ "nam', '<|python_tag|>print(1)', '{"name": "a", "parameters": [1]}', '{"name": "a", "parameters": {"x": 1}']) {
      assert.deepEqual(parse('llama3_json', text), { content: text, calls: [] });
    }
  });
  test('invalid JSON after a first call falls back to content', () => {
    assert.deepEqual(parse('llama3_json', '{"name": "a", "parameters": {}}; {"name": oops}'), { content: '; {"name": oops}', calls: [call(0, 'a', {})] });
  });
});

describe('mistral', () => {
  test('marker and two calls, text before', () => {
    const text = 'Sure. [TOOL_CALLS][{"name": "a", "arguments": {"x": "]"}}, {"name": "b", "arguments": {}}]';
    assert.deepEqual(parse('mistral', text), { content: 'Sure.', calls: [call(0, 'a', { x: ']' }), call(1, 'b', {})] });
  });
  test('a bare array at the start (the special token skipped)', () => {
    assert.deepEqual(parse('mistral', '[{"name": "a", "arguments": {"q": 1}}]'), { content: '', calls: [call(0, 'a', { q: 1 })] });
  });
  test('invalid JSON after the marker is content', () => {
    for (const text of ['[TOOL_CALLS][{"name": oops}]', 'x [TOOL_CALLS] no array', '[TOOL_CALLS][{"name": "a", "arguments": {}}', '[1, 2] [TOOL_CAL'])
      assert.deepEqual(parse('mistral', text), { content: text, calls: [] });
  });
});

test('the format is detected from the chat template text', () => {
  assert.equal(detectToolCallParser('... <tool_call> ...'), 'hermes');
  assert.equal(detectToolCallParser('{{ "[TOOL_CALLS]" }}'), 'mistral');
  assert.equal(detectToolCallParser('Environment: ipython ... "parameters": '), 'llama3_json');
  assert.equal(detectToolCallParser('<|python_tag|>'), 'llama3_json');
  assert.equal(detectToolCallParser('{{ messages }}'), null);
});

test('a bare JSON answer without arguments is text, not a call (llama3_json, mistral); inside <tool_call> markup it is a call', () => {
  const whole = (name: 'llama3_json' | 'mistral' | 'hermes', text: string) => {
    const p = newToolCallParser(name, () => 'call_x');
    const a = p.feed(text);
    const b = p.end();
    return { content: (a.content ?? '') + (b.content ?? ''), calls: [...(a.calls ?? []), ...(b.calls ?? [])] };
  };
  assert.deepEqual(whole('llama3_json', '{"name": "Alice", "age": 30}'), { content: '{"name": "Alice", "age": 30}', calls: [] });
  assert.deepEqual(whole('mistral', '[{"name": "Alice", "age": 30}]'), { content: '[{"name": "Alice", "age": 30}]', calls: [] });
  assert.equal(whole('hermes', '<tool_call>\n{"name": "ping"}\n</tool_call>').calls[0].name, 'ping');
});

test('hermes: "</tool_call>" inside a string argument does not end the block; text on both sides of a call stays apart', () => {
  const p = newToolCallParser('hermes', () => 'call_x');
  const text = 'Writing it.\n<tool_call>\n{"name": "write", "arguments": {"body": "a </tool_call> b"}}\n</tool_call>\nDone.';
  const outs = [...[...text].map((ch) => p.feed(ch)), p.end()];
  const content = outs.map((o) => o.content ?? '').join('');
  const calls = outs.flatMap((o) => o.calls ?? []);
  assert.equal(content, 'Writing it.\nDone.');
  assert.deepEqual(calls.map((c) => [c.name, JSON.parse(c.arguments)]), [['write', { body: 'a </tool_call> b' }]]);
});

test('llama3_json: a trailing ";" after the last call is no content', () => {
  const p = newToolCallParser('llama3_json', () => 'call_x');
  const outs = [p.feed('{"name": "a", "parameters": {}};'), p.end()];
  assert.equal(outs.map((o) => o.content ?? '').join(''), '');
  assert.equal(outs.flatMap((o) => o.calls ?? []).length, 1);
});

describe('forced calls (guided output)', () => {
  const required = (newId: NewCallId) => new RequiredCallsParser(newId);
  test("'required': each element of the array is a call", () => {
    const text = '[{"name": "get_weather", "parameters": {"city": "Verona"}}, {"name": "summon", "parameters": {"who": "Nurse", "urgent": true}}]';
    assert.deepEqual(parse(required, text), { content: '', calls: [call(0, 'get_weather', { city: 'Verona' }), call(1, 'summon', { who: 'Nurse', urgent: true })] });
  });
  test("'required' cut short: complete calls kept, the open one dropped; nothing complete: the text is content", () => {
    assert.deepEqual(parse(required, '[{"name": "f", "parameters": {}}, {"name": "g", "param'), { content: '', calls: [call(0, 'f', {})] });
    assert.deepEqual(parse(required, '[{"name": "f", "par'), { content: '[{"name": "f", "par', calls: [] });
  });
  test('a named function: the whole output is its arguments', () => {
    assert.deepEqual(parse((newId) => new NamedCallParser('summon', newId), '{"who": "Nurse", "urgent": false}'), { content: '', calls: [call(0, 'summon', { who: 'Nurse', urgent: false })] });
    assert.deepEqual(parse((newId) => new NamedCallParser('summon', newId), '{"who": "Nu'), { content: '{"who": "Nu', calls: [] });
  });
});

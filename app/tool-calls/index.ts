import { TOOL_CALL_PARSERS } from '../../config/schema.js';
import { HermesParser } from './hermes.js';
import { Llama3JsonParser } from './llama3-json.js';
import { MistralParser } from './mistral.js';
import { randomCallId, type NewCallId, type ToolCallParser } from './types.js';

export { TOOL_CALL_PARSERS };
export type ToolCallParserName = (typeof TOOL_CALL_PARSERS)[number];

/** The format a chat template teaches its model, read off the template's text; null when none is recognised. */
export function detectToolCallParser(templateSource: string): ToolCallParserName | null {
  if (templateSource.includes('<tool_call>')) return 'hermes';
  if (templateSource.includes('[TOOL_CALLS]')) return 'mistral';
  if (templateSource.includes('<|python_tag|>') || (templateSource.includes('"parameters"') && templateSource.includes('ipython'))) return 'llama3_json';
  return null;
}

export function newToolCallParser(name: ToolCallParserName, newId: NewCallId = randomCallId): ToolCallParser {
  switch (name) {
    case 'hermes':
      return new HermesParser(newId);
    case 'llama3_json':
      return new Llama3JsonParser(newId);
    case 'mistral':
      return new MistralParser(newId);
  }
}

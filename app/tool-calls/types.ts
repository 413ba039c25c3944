import { randomUUID } from 'node:crypto';

/** One complete tool call parsed out of the model's text; arguments is a JSON object re-serialized. */
export interface ParsedCall {
  index: number;
  id: string;
  name: string;
  arguments: string;
}

/** What one piece of fed text turned into: text safe to show now, and calls completed by it. */
export interface ParsedText {
  content?: string;
  calls?: ParsedCall[];
}

/**
 * Incremental: feed() text deltas as they come, then end() once. Text that
 * may still turn out to be tool markup is held back until it is decided, so
 * markup never reaches content; markup that does not hold a valid call comes
 * back as content, so no text is lost. Whole or split at any point, the
 * concatenated content and the calls are the same.
 */
export interface ToolCallParser {
  feed(text: string): ParsedText;
  end(): ParsedText;
}

export type NewCallId = () => string;

/** OpenAI's shape of a call id: call_ and 24 random characters. */
export const randomCallId: NewCallId = () => 'call_' + randomUUID().replace(/-/g, '').slice(0, 24);

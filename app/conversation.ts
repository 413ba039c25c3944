import type { Context } from 'hono';

import type { TokenGuide } from '../engine/types.js';
import type { ChoiceEvent } from './choice-events.js';
import type { ServerDeps } from './deps.js';
import { badRequest } from './errors.js';
import { cancelAll, type Choice } from './generation.js';
import { guidesFor, type GuideRequest } from './guided-request.js';
import { chatPromptTokens } from './prompts.js';
import { onClientGone } from './respond.js';
import type { ChatMessageIn, ChatRequest, ToolIn } from './schemas.js';
import { forcedToolCalls } from './tool-calls/forced.js';
import { newToolCallParser, type ToolCallParserName } from './tool-calls/index.js';
import { checkToolChoice, toolParserFor } from './tool-calls/request.js';
import { randomCallId, type NewCallId, type ToolCallParser } from './tool-calls/types.js';

/** A conversation as every API that has one (chat completions, Responses, Messages) hands it over, in chat completions' terms. */
export interface Conversation {
  messages: ChatMessageIn[];
  tools: ToolIn[] | null;
  toolChoice: ChatRequest['tool_choice'];
  parallelToolCalls?: boolean | null;
  /** A text format the output must follow (response_format, text.format), and the field that asked. */
  format: GuideRequest | null;
  addGenerationPrompt?: boolean;
  /** The request field errors about the conversation name: messages (chat, Messages) or input (Responses). */
  param?: string;
}

/** What the routes need to generate a conversation's answer. */
export interface PreparedConversation {
  prompt: number[];
  /** A fresh tool-call reader per choice, or null when no calls are read (no tools, 'none', no format known). */
  newParser: (() => ToolCallParser) | null;
  /** The format read with --tool-call-parser or detected; null for forced calls (their own JSON). */
  parserName: ToolCallParserName | null;
  /** Makes the guides of n choices (forced calls or the format), or undefined when the output is free. */
  guides(n: number): Promise<TokenGuide[] | undefined>;
  /** Hermes' <tool_call> and Mistral's [TOOL_CALLS] are special tokens in some tokenizers: the parser must see them (vLLM does the same). */
  keepSpecialTokens: boolean;
}

/**
 * The one path from a conversation to what the engine needs: tool_choice
 * checked, forced calls made a grammar, the prompt rendered through the chat
 * template, and the tool-call reader chosen. A behaviour fixed here is fixed
 * for all three APIs.
 */
export async function prepareConversation(deps: ServerDeps, conv: Conversation, newCallId: NewCallId = randomCallId): Promise<PreparedConversation> {
  const toolBody = { tools: conv.tools, tool_choice: conv.toolChoice, parallel_tool_calls: conv.parallelToolCalls };
  checkToolChoice(toolBody);
  const forced = forcedToolCalls(toolBody, newCallId);
  if (forced && conv.format) {
    const c = conv.toolChoice;
    throw badRequest(`tool_choice ${typeof c === 'object' ? 'naming a function' : `'${c}'`} guides the output to a tool call; it cannot also follow ${conv.format.param}`, 'tool_choice');
  }
  const prompt = await chatPromptTokens(deps, conv.messages, conv.addGenerationPrompt ?? true, conv.tools, conv.param);
  const parserName = forced ? null : toolParserFor(deps, toolBody);
  const guide = forced?.guide ?? conv.format;
  return {
    prompt,
    parserName,
    newParser: forced ? forced.parser : parserName ? () => newToolCallParser(parserName, newCallId) : null,
    guides: async (n) => (guide ? guidesFor(deps, guide, n) : undefined),
    keepSpecialTokens: parserName === 'hermes' || parserName === 'mistral',
  };
}

/**
 * Reads one choice's events for a response that is not streamed; null when
 * the client left first (its requests are cancelled; nobody reads an answer).
 */
export async function collectEvents(c: Context, deps: ServerDeps, choices: Choice[], events: AsyncIterable<ChoiceEvent>, take: (e: ChoiceEvent) => void): Promise<'done' | 'gone'> {
  let gone = false;
  const stopWatching = onClientGone(c, () => {
    gone = true;
    cancelAll(deps, choices);
  });
  try {
    for await (const e of events) if (!gone) take(e);
    return gone ? 'gone' : 'done';
  } finally {
    stopWatching();
  }
}

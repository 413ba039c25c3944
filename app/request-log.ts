import type { Context } from 'hono';

/**
 * What a generation route learned about its request, for the access log line
 * and the metrics. Routes call noteOutcome() when the response is complete
 * (for a stream: when it has ended), once.
 */
export interface RequestOutcome {
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds from arrival to the first generated token; null if none came. */
  ttftMs: number | null;
  /** One per choice: stop, length, abort (client gone or server shut down), error. */
  finishReasons: string[];
  /** For a stream that ended with an error event: its status and message (the HTTP status was already 200). */
  error?: { status: number; message: string; code: string | null };
  /** Prompt and output text, only when --log-requests asks for them. */
  promptText?: string;
  outputText?: string[];
}

export interface RequestLogVariables {
  /** Resolves when the response is complete; set by the access-log middleware. */
  noteOutcome?: (o: RequestOutcome) => void;
}

/** Reports a generation's outcome to the access log (a no-op where no middleware listens). */
export function noteOutcome(c: Context, outcome: RequestOutcome): void {
  (c.get('noteOutcome' as never) as RequestLogVariables['noteOutcome'] | undefined)?.(outcome);
}

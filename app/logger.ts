import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The server's logger. `detail` becomes fields of the JSON line: an Error is
 * logged as `err` (type, message, stack), a plain object is merged in, any
 * other value goes under `detail`. Tests pass plain objects implementing the
 * four methods; `child` is optional (see withBindings()).
 */
export interface Log {
  debug(message: string, detail?: unknown): void;
  info(message: string, detail?: unknown): void;
  warn(message: string, detail?: unknown): void;
  error(message: string, detail?: unknown): void;
  /** A logger whose every line carries these fields (say request_id). */
  child?(bindings: Record<string, unknown>): Log;
}

/**
 * JSON lines through pino: {"level":"info","time":"<ISO>","pid":..,"hostname":..,"msg":"..",...fields}.
 * The destination defaults to stderr, written synchronously so that nothing
 * is lost when the process exits right after a line (main.ts exits after "stopped").
 */
export function jsonLog(level: LogLevel, destination: DestinationStream = pino.destination({ dest: 2, sync: true })): Log {
  const logger = pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return wrap(logger);
}

/** The server's log: JSON lines on stderr (stdout stays free for --help and the like). */
export function consoleLog(level: LogLevel): Log {
  return jsonLog(level);
}

function wrap(logger: PinoLogger): Log {
  const at = (l: LogLevel) => (message: string, detail?: unknown) => {
    if (detail === undefined) logger[l](message);
    else logger[l](fieldsOf(detail), message);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (bindings) => wrap(logger.child(bindings)) };
}

/** What a detail contributes to a JSON line. */
export function fieldsOf(detail: unknown): Record<string, unknown> {
  if (detail instanceof Error) return { err: detail };
  if (detail !== null && typeof detail === 'object' && !Array.isArray(detail) && Object.getPrototypeOf(detail) === Object.prototype)
    return detail as Record<string, unknown>;
  return { detail };
}

/**
 * A logger whose lines carry `bindings`: the logger's own child() where it has
 * one, otherwise a wrapper that merges the bindings into each detail (so a
 * test's plain-object Log sees them too).
 */
export function withBindings(log: Log, bindings: Record<string, unknown>): Log {
  if (log.child) return log.child(bindings);
  const merged = (detail: unknown) => (detail === undefined ? { ...bindings } : { ...bindings, ...fieldsOf(detail) });
  return {
    debug: (m, d) => log.debug(m, merged(d)),
    info: (m, d) => log.info(m, merged(d)),
    warn: (m, d) => log.warn(m, merged(d)),
    error: (m, d) => log.error(m, merged(d)),
    child: (more) => withBindings(log, { ...bindings, ...more }),
  };
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

export interface Log {
  debug(message: string, detail?: unknown): void;
  info(message: string, detail?: unknown): void;
  warn(message: string, detail?: unknown): void;
  error(message: string, detail?: unknown): void;
}

/** One line per message on stderr, with an ISO time and the level. */
export function consoleLog(level: LogLevel): Log {
  const at = (l: LogLevel) => (message: string, detail?: unknown) => {
    if (LEVELS[l] < LEVELS[level]) return;
    const extra = detail === undefined ? '' : ' ' + (detail instanceof Error ? (detail.stack ?? detail.message) : JSON.stringify(detail));
    process.stderr.write(`${new Date().toISOString()} ${l.toUpperCase()} ${message}${extra}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

// The server's entry point: npm start, or node dist/app/main.js [options].
import { ConfigError, helpText, loadConfig } from '../config/load.js';
import { consoleLog } from './logger.js';
import { ListenError, startServer } from './server.js';

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  if (loaded.help) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  const log = consoleLog(loaded.config.logLevel);
  let server;
  try {
    server = await startServer(loaded.config, log);
  } catch (e) {
    if (!(e instanceof ListenError)) throw e;
    log.error(`tachyon failed to start: ${e.message}`);
    process.exit(1);
  }
  log.info(`serving ${server.models.map((m) => m.modelName).join(', ')} at ${server.url} (OpenAI API under ${server.url}/v1)`);
  // Guided decoding's vocabulary tables take a moment per model (about 0.3 s at 128k tokens), and its first compile
  // is slower than later ones: both done now, not on the first request that needs them.
  for (const m of server.models)
    m.grammars()
      .then((g) => g.warmUp())
      .catch((e: Error) => log.warn(`guided decoding is not available for ${m.modelName}: ${e.message}`));
  const stop = (signal: string) => {
    log.info(`${signal}: draining: finishing running requests (up to ${loaded.config.shutdownGraceMs} ms), refusing new ones`);
    server.shutdown().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (e) => {
        log.error('shutdown failed', e);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`tachyon failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});

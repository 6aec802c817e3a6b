import type { Logger } from '@nestjs/common';
import { EmbeddedPostgresError } from './database/embedded-postgres.error';
import { SampleConfigError } from './config';

/**
 * Closes the process's services once, on the first SIGINT or SIGTERM, in the order `close` gives,
 * then exits with 0.
 */
export function closeOnSignals(logger: Logger, close: () => Promise<void>): void {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) {
      return;
    }
    closing = true;
    logger.log(`${signal}: closing.`);
    await close();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

/** Ends a process whose start failed: a known cause in one line that says what to do, anything else with its stack. */
export function exitOnStartFailure(error: unknown): never {
  const known = error instanceof EmbeddedPostgresError || error instanceof SampleConfigError;
  console.error(known ? error.message : error);
  process.exit(1);
}

/**
 * The embedded PostgreSQL could not be set up or started. The message is one line that says why
 * and what to do; the underlying error, if any, is the `cause`.
 */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

/** The way out that always exists, for the end of every message. */
export const USE_YOUR_OWN_SERVER = 'or set DATABASE_URL to a PostgreSQL server of your own';

/** An error, or a failed command's output, reduced to the one line that says most. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  return lines.find((line) => /error|fatal|panic|denied/i.test(line)) ?? lines.at(-1) ?? text;
}

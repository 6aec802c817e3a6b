import type { EmbeddedDatabase } from '../../sample-app/database/embedded-postgres';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __embeddedPostgres__?: EmbeddedDatabase }).__embeddedPostgres__?.stop();
}

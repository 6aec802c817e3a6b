import { spawnSync } from 'node:child_process';

/** The NATS server (with JetStream) the JetStream suites use: `NATS_URL`, else the local one. */
export const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

export const NATS_MISSING_MESSAGE = `NATS suites did not run: no server answers at ${NATS_URL}. Start one with JetStream (nats-server -js) or set NATS_URL to run them; under CI=true an unreachable server fails the run.`;

/** Whether something accepts TCP connections at the URL's host and port (one short probe). */
function reachable(url: string): boolean {
  const { hostname, port } = new URL(url);
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${Number(port) || 4222}, ${JSON.stringify(hostname)});
       s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));
       setTimeout(() => process.exit(1), 2000);`,
    ],
    { timeout: 5000 },
  );
  return probe.status === 0;
}

/**
 * `describe` when the server answers, `describe.skip` when it does not; under CI=true an
 * unreachable server throws instead, failing the run. With `report`, a skip prints
 * NATS_MISSING_MESSAGE once.
 */
export function describeWithNats(report = false): typeof describe | typeof describe.skip {
  if (reachable(NATS_URL)) {
    return describe;
  }
  if (process.env.CI === 'true') {
    throw new Error(NATS_MISSING_MESSAGE);
  }
  if (report) {
    process.stderr.write(`${NATS_MISSING_MESSAGE}\n`);
  }
  return describe.skip;
}

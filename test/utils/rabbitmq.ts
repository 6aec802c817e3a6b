import { spawnSync } from 'node:child_process';

/** The RabbitMQ the broker suites use: `RABBITMQ_URL`, else the test environment's own. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672';

export const RABBITMQ_MISSING_MESSAGE = `RabbitMQ suites did not run: no broker answers at ${RABBITMQ_URL}. Start one (apt-get install rabbitmq-server) or set RABBITMQ_URL to run them; under CI=true an unreachable broker fails the run.`;

/** Whether something accepts TCP connections at the URL's host and port (one short probe). */
function reachable(url: string): boolean {
  const { hostname, port } = new URL(url);
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${Number(port) || 5672}, ${JSON.stringify(hostname)});
       s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));
       setTimeout(() => process.exit(1), 2000);`,
    ],
    { timeout: 5000 },
  );
  return probe.status === 0;
}

/**
 * `describe` when the broker answers, `describe.skip` when it does not; under CI=true an
 * unreachable broker throws instead, failing the run. With `report`, a skip prints
 * RABBITMQ_MISSING_MESSAGE once.
 */
export function describeWithRabbitMq(report = false): typeof describe | typeof describe.skip {
  if (reachable(RABBITMQ_URL)) {
    return describe;
  }
  if (process.env.CI === 'true') {
    throw new Error(RABBITMQ_MISSING_MESSAGE);
  }
  if (report) {
    process.stderr.write(`${RABBITMQ_MISSING_MESSAGE}\n`);
  }
  return describe.skip;
}

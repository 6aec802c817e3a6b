import { describeWithBroker } from './broker-probe';

/** The NATS server (with JetStream) the JetStream suites use: `NATS_URL`, else the local one. */
export const NATS_URL = process.env.NATS_URL || 'nats://127.0.0.1:4222';

export const NATS_MISSING_MESSAGE = `NATS suites did not run: no server answers at ${NATS_URL}. Start one with JetStream (nats-server -js) or set NATS_URL to run them; under CI=true an unreachable server fails the run.`;

/** `describe` when the NATS server answers (see describeWithBroker). */
export function describeWithNats(report = false): typeof describe | typeof describe.skip {
  return describeWithBroker(NATS_URL, 4222, NATS_MISSING_MESSAGE, report);
}

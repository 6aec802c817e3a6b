import { describeWithBroker } from './broker-probe';

/** The RabbitMQ the broker suites use: `RABBITMQ_URL`, else the test environment's own. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672';

export const RABBITMQ_MISSING_MESSAGE = `RabbitMQ suites did not run: no broker answers at ${RABBITMQ_URL}. Start one (apt-get install rabbitmq-server) or set RABBITMQ_URL to run them; under CI=true an unreachable broker fails the run.`;

/** `describe` when RabbitMQ answers (see describeWithBroker). */
export function describeWithRabbitMq(report = false): typeof describe | typeof describe.skip {
  return describeWithBroker(RABBITMQ_URL, 5672, RABBITMQ_MISSING_MESSAGE, report);
}

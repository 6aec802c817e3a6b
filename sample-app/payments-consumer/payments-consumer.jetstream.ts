import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { CustomStrategy } from '@nestjs/microservices';
import { JetStreamServer } from '../../lib/nats';
import { type NatsPaymentsConsumerConfig, SampleConfigError } from '../config';
import { PAYMENTS_CONSUMER_PREFETCH, PAYMENTS_REQUESTED } from './payments-consumer.constants';
import { redactedUrl } from './redacted-url';

/** The prefix of the durable consumer's name: every instance of the app shares the consumer. */
export const PAYMENTS_CONSUMER_DURABLE = 'sample-app';

/**
 * The library's JetStream transport for the consumer: one durable pull consumer of
 * `payments.requested` on the stream (created, with that subject, when missing). The idempotency
 * module acks each message once its outcome is committed.
 */
export function paymentsJetStreamTransport(config: NatsPaymentsConsumerConfig): CustomStrategy {
  return {
    strategy: new JetStreamServer({
      servers: config.natsUrl,
      stream: config.stream,
      subjects: [PAYMENTS_REQUESTED],
      durable: PAYMENTS_CONSUMER_DURABLE,
      ackWaitMs: config.ackWaitMs,
      maxMessages: PAYMENTS_CONSUMER_PREFETCH,
    }),
  };
}

/**
 * The start's check that a NATS server with JetStream answers: the transport would retry a
 * connection forever instead. Its refusal is printed as one line (a `SampleConfigError`).
 */
export async function checkJetStream(config: NatsPaymentsConsumerConfig): Promise<void> {
  let connection: Awaited<ReturnType<typeof connect>>;
  try {
    connection = await connect({ servers: config.natsUrl, reconnect: false, timeout: 5_000 });
  } catch (error) {
    throw new SampleConfigError(
      `PAYMENTS_CONSUMER=nats: no NATS server answers at ${redactedUrl(config.natsUrl)} (${String(error)}). Start one (nats-server -js) or set NATS_URL.`,
      { cause: error },
    );
  }
  try {
    await jetstreamManager(connection);
  } catch (error) {
    throw new SampleConfigError(
      `PAYMENTS_CONSUMER=nats: the NATS server at ${redactedUrl(config.natsUrl)} has no JetStream (${String(error)}). Start it with -js.`,
      { cause: error },
    );
  } finally {
    await connection.close();
  }
}

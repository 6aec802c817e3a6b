import { type RmqOptions, Transport } from '@nestjs/microservices';
import amqp from 'amqplib';
import type { RabbitMqPaymentsConsumerConfig } from '../config';
import { PAYMENTS_CONSUMER_PREFETCH } from './payments-consumer.constants';
import { redactedUrl } from './redacted-url';

/** The queue where the deliveries of `queue` that can never succeed go. */
export function deadLetterQueueOf(queue: string): string {
  return `${queue}.dead`;
}

/**
 * Nest's RabbitMQ transport for the consumer. `noAck: false`: the idempotency module acks each
 * delivery once its outcome is committed, and dead-letters those that can never succeed.
 */
export function paymentsConsumerTransport(config: RabbitMqPaymentsConsumerConfig): RmqOptions {
  return {
    transport: Transport.RMQ,
    options: {
      urls: [config.rabbitmqUrl],
      queue: config.queue,
      noAck: false,
      prefetchCount: PAYMENTS_CONSUMER_PREFETCH,
      queueOptions: {
        durable: true,
        deadLetterExchange: '',
        deadLetterRoutingKey: deadLetterQueueOf(config.queue),
      },
    },
  };
}

/**
 * Declares the dead-letter queue, which Nest's transport does not. Also the start's check that
 * the broker answers: Nest's transport would retry a connection forever instead.
 */
export async function declareDeadLetterQueue(
  config: RabbitMqPaymentsConsumerConfig,
): Promise<void> {
  let connection: amqp.ChannelModel;
  try {
    connection = await amqp.connect(config.rabbitmqUrl);
  } catch (error) {
    throw new Error(
      `PAYMENTS_CONSUMER=rabbitmq: no RabbitMQ answers at ${redactedUrl(config.rabbitmqUrl)} (${String(error)}). Start one or set RABBITMQ_URL.`,
      { cause: error },
    );
  }
  try {
    const channel = await connection.createChannel();
    await channel.assertQueue(deadLetterQueueOf(config.queue), { durable: true });
  } finally {
    await connection.close();
  }
}

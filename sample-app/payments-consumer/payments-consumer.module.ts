import { Module } from '@nestjs/common';
import { PaymentsConsumerCrashHook } from './payments-consumer-crash-hook';
import { PaymentsConsumerController } from './payments-consumer.controller';

/** The consumer of `payments.requested` messages (`PAYMENTS_CONSUMER=rabbitmq` or `nats`). */
@Module({
  controllers: [PaymentsConsumerController],
  providers: [PaymentsConsumerCrashHook],
})
export class PaymentsConsumerModule {}

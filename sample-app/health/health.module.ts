import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { IdempotencyHealthIndicator } from '../../lib/health';
import { HealthController } from './health.controller';

/** The health endpoint; the indicator finds the stores of the global idempotency module. */
@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'pretty' })],
  controllers: [HealthController],
  providers: [IdempotencyHealthIndicator],
})
export class HealthModule {}

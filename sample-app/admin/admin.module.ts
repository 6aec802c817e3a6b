import { Module } from '@nestjs/common';
import { IdempotencyKeysController } from './idempotency-keys.controller';

/** The administrators' endpoints (`/admin/*`), behind `AdminTokenGuard`. */
@Module({ controllers: [IdempotencyKeysController] })
export class AdminModule {}

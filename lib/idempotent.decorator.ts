import { SetMetadata, UseInterceptors, applyDecorators } from '@nestjs/common';
import { IDEMPOTENT_METADATA, SKIP_IDEMPOTENCY_METADATA } from './idempotency.constants';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import type { IdempotencyRouteOptions } from './interfaces/idempotency-options.interface';

/**
 * Makes a route (or every route of a controller) idempotent: the first request with a given
 * `Idempotency-Key` runs, and every retry of that key gets the stored response. A method's options
 * replace its controller's. Works without a global registration of the interceptor, and with one
 * without running twice.
 *
 * @example
 * ```ts
 * @Post()
 * @Idempotent({ ttlMs: 3_600_000 })
 * create(@Body() dto: CreatePaymentDto) {
 *   return this.payments.charge(dto);
 * }
 * ```
 */
export function Idempotent(
  options: IdempotencyRouteOptions = {},
): ClassDecorator & MethodDecorator {
  return applyDecorators(
    SetMetadata(IDEMPOTENT_METADATA, options),
    UseInterceptors(IdempotencyInterceptor),
  );
}

/**
 * Opts a route (or a controller) out of idempotency handling, for routes a global registration with
 * `autoMethods` would otherwise cover.
 *
 * @example
 * ```ts
 * @Post('webhooks')
 * @SkipIdempotency()
 * receive(@Body() event: WebhookEvent) {}
 * ```
 */
export function SkipIdempotency(): ClassDecorator & MethodDecorator {
  return SetMetadata(SKIP_IDEMPOTENCY_METADATA, true);
}

import type { Logger } from '@nestjs/common';
import type { ResolvedModuleSettings } from '../idempotency-options.defaults';
import { IdempotencyTelemetry } from './idempotency-telemetry';
import { loadOpenTelemetry } from './load-opentelemetry';

/**
 * The module's telemetry, or null when it is turned off (`telemetry: false`) or
 * `@opentelemetry/api` is not installed: then each place that would record checks for null only.
 */
export async function createTelemetry(
  settings: Pick<ResolvedModuleSettings, 'telemetry'>,
  logger: Logger,
): Promise<IdempotencyTelemetry | null> {
  if (!settings.telemetry) {
    return null;
  }
  const api = await loadOpenTelemetry(logger);
  return api === null ? null : new IdempotencyTelemetry(api);
}

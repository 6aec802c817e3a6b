import type { Logger } from '@nestjs/common';
import type * as OpenTelemetry from '@opentelemetry/api';
import { loadOptionalPeer } from '../optional-peer';

/** The parts of `@opentelemetry/api` the module uses. */
export type OpenTelemetryApi = Pick<
  typeof OpenTelemetry,
  'context' | 'metrics' | 'trace' | 'SpanStatusCode'
>;

let loading: Promise<OpenTelemetryApi | null> | undefined;

/**
 * `@opentelemetry/api` when the application has it installed, else null. Imported on first use, so
 * that an application without it neither needs it nor loads it. Any other failure to load it is
 * logged, and the module runs without telemetry: telemetry never stops an application's start.
 */
export function loadOpenTelemetry(logger: Logger): Promise<OpenTelemetryApi | null> {
  loading ??= loadOptionalPeer<OpenTelemetryApi>(
    '@opentelemetry/api',
    () => import('@opentelemetry/api'),
    'the module records no metrics or traces',
    logger,
  );
  return loading;
}

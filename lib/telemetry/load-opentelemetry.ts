import type { Logger } from '@nestjs/common';
import type * as OpenTelemetry from '@opentelemetry/api';
import { isModuleNotFound } from '../optional-peer';

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
  loading ??= import('@opentelemetry/api').then(
    (api) => api as OpenTelemetryApi,
    (error: unknown) => {
      if (!isModuleNotFound(error, '@opentelemetry/api')) {
        logger.warn(
          `@opentelemetry/api is installed but could not be loaded, so the module records no metrics or traces: ${String(error)}`,
        );
      }
      return null;
    },
  );
  return loading;
}

import type { Logger } from '@nestjs/common';
import { matchedPathTemplate } from '../http/route-template';
import type {
  IdempotencyOutcome,
  IdempotencyOutcomeEvent,
} from '../interfaces/idempotency-outcome.interface';
import type { IdempotencyTelemetry } from '../telemetry/idempotency-telemetry';
import type { Exchange, ReportedRequest } from './exchange';

/** What an event adds to the request's own facts. */
export interface OutcomeDetails {
  status?: number;
  error?: unknown;
}

/** What the reporter writes into logs and events. */
export interface OutcomeLogging {
  /** The raw key instead of its hash. */
  logRawKeys: boolean;
  /** A debug line per outcome. */
  logOutcomes: boolean;
}

/**
 * Counts outcomes in the module's metrics, when telemetry is on, logs them at debug level when
 * asked to, and sends them as events to the application's `onOutcome` hook, when it has one.
 */
export class OutcomeReporter {
  private readonly logRawKeys: boolean;
  private readonly logOutcomes: boolean;

  constructor(
    private readonly hook: ((event: IdempotencyOutcomeEvent) => void) | undefined,
    logging: OutcomeLogging,
    private readonly logger: Logger,
    private readonly telemetry: () => IdempotencyTelemetry | null,
  ) {
    this.logRawKeys = logging.logRawKeys;
    this.logOutcomes = logging.logOutcomes;
  }

  report(
    subject: ReportedRequest | Exchange,
    outcome: IdempotencyOutcome,
    details: OutcomeDetails = {},
  ): void {
    this.telemetry()?.requestOutcome(subject, outcome);
    if (!this.hook && !this.logOutcomes) {
      return;
    }
    const { route } = subject;
    const template = matchedPathTemplate(subject.request) ?? route.name;
    const claim = 'claim' in subject ? subject.claim : undefined;
    const keyHash = subject.keyHash;
    if (this.logOutcomes) {
      const key =
        claim && this.logRawKeys
          ? `key ${JSON.stringify(claim.key)}`
          : keyHash === undefined
            ? 'no valid key'
            : `key #${keyHash}`;
      const status = details.status === undefined ? '' : `, status ${details.status}`;
      this.logger.debug(`${outcome}: ${subject.method} ${template}, ${key}${status}`);
    }
    if (!this.hook) {
      return;
    }
    try {
      this.hook({
        outcome,
        route: `${subject.method} ${template}`,
        controller: route.controller,
        handler: route.handler,
        ...(claim && { scope: claim.scope }),
        ...(keyHash !== undefined && { keyHash }),
        ...(claim && this.logRawKeys && { key: claim.key }),
        method: subject.method,
        path: subject.path,
        replayed: outcome === 'replayed',
        ...(subject.claimDurationMs !== undefined && {
          claimDurationMs: subject.claimDurationMs,
        }),
        ...(subject.handlerDurationMs !== undefined && {
          handlerDurationMs: subject.handlerDurationMs,
        }),
        ...details,
      });
    } catch (error) {
      this.logger.warn(`onOutcome hook threw: ${String(error)}`);
    }
  }
}

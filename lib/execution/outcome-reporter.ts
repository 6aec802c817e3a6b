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

/**
 * Counts outcomes in the module's metrics, when telemetry is on, and sends them as events to the
 * application's `onOutcome` hook, when it has one.
 */
export class OutcomeReporter {
  constructor(
    private readonly hook: ((event: IdempotencyOutcomeEvent) => void) | undefined,
    private readonly logRawKeys: boolean,
    private readonly logger: Logger,
    private readonly telemetry: () => IdempotencyTelemetry | null,
  ) {}

  report(
    subject: ReportedRequest | Exchange,
    outcome: IdempotencyOutcome,
    details: OutcomeDetails = {},
  ): void {
    this.telemetry()?.requestOutcome(subject, outcome);
    if (!this.hook) {
      return;
    }
    const { route } = subject;
    const template = matchedPathTemplate(subject.request) ?? route.name;
    const claim = 'claim' in subject ? subject.claim : undefined;
    const keyHash = subject.keyHash;
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

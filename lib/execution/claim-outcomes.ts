import type { IdempotencyOutcome } from '../interfaces/idempotency-outcome.interface';
import type { ClaimResult } from '../store/claim-result.interface';

/** The outcome a claim's answer leads to. */
export const CLAIM_OUTCOMES: Readonly<Record<ClaimResult['kind'], IdempotencyOutcome>> = {
  claimed: 'claimed',
  replay: 'replayed',
  'in-flight': 'conflict',
  mismatch: 'mismatch',
  'not-replayable': 'not-replayable',
};

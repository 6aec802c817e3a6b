import { type HttpResult, isReplayed } from './load-driver';

export const IN_FLIGHT_PROBLEM = 'urn:nestjs-idempotency:problem:key-in-flight';

/**
 * A waiting duplicate (wait mode) gives up with 409 after `waitTimeoutMs` (10 s by default), less
 * at most one pause between two looks (200 ms). A 409 that came sooner is a broken promise.
 */
export const WAIT_GIVES_UP_AFTER_MS = 10_000 - 500;

/** The answers that requests with one key got, sorted by what they are. */
export interface KeyAnswers {
  /** Answers of an execution (not replayed) with a stored status: one per execution. */
  executed: HttpResult[];
  /** Answers carrying `Idempotent-Replayed: true`. */
  replays: HttpResult[];
  /** `409` key-in-flight problems that tell the client when to retry. */
  conflicts: HttpResult[];
  /** Anything else: a failure of the scenario unless the test expects it. */
  others: HttpResult[];
}

export function classifyAnswers(results: readonly HttpResult[]): KeyAnswers {
  const answers: KeyAnswers = { executed: [], replays: [], conflicts: [], others: [] };
  for (const result of results) {
    if (result.status === null) {
      answers.others.push(result);
    } else if (isReplayed(result)) {
      answers.replays.push(result);
    } else if (isInFlightConflict(result)) {
      answers.conflicts.push(result);
    } else if (result.status < 500 && result.status !== 409) {
      answers.executed.push(result);
    } else {
      answers.others.push(result);
    }
  }
  return answers;
}

/** A `409` problem of a key in flight, with the `Retry-After` docs/guarantees.md promises. */
export function isInFlightConflict(result: HttpResult): boolean {
  if (result.status !== 409) {
    return false;
  }
  const type = String(result.headers['content-type'] ?? '');
  const retryAfter = Number(result.headers['retry-after']);
  return (
    type.startsWith('application/problem+json') &&
    problemType(result) === IN_FLIGHT_PROBLEM &&
    Number.isInteger(retryAfter) &&
    retryAfter >= 1
  );
}

/** Wait-mode refusals that came before the wait could have timed out (none is allowed). */
export function earlyWaitConflicts(conflicts: readonly HttpResult[]): HttpResult[] {
  return conflicts.filter((result) => result.latencyMs < WAIT_GIVES_UP_AFTER_MS);
}

/**
 * Replays that are not byte for byte the answer of the execution: another status, body,
 * `Location` or `Content-Type`. Empty when every replay matches.
 */
export function replayMismatches(execution: HttpResult, replays: readonly HttpResult[]): string[] {
  const problems: string[] = [];
  for (const replay of replays) {
    for (const [name, actual, expected] of [
      ['status', replay.status, execution.status],
      ['body', replay.text, execution.text],
      ['location', replay.headers.location, execution.headers.location],
      ['content-type', replay.headers['content-type'], execution.headers['content-type']],
    ] as const) {
      if (actual !== expected) {
        problems.push(`${name}: ${JSON.stringify(actual)} instead of ${JSON.stringify(expected)}`);
      }
    }
  }
  return problems;
}

export function problemType(result: HttpResult): string | undefined {
  try {
    const body = JSON.parse(result.text) as { type?: unknown };
    return typeof body.type === 'string' ? body.type : undefined;
  } catch {
    return undefined;
  }
}

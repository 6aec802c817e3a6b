import type { StatementCalls } from './database-monitor';
import type { ExactlyOnceCheck } from './exactly-once';
import type { LoadOutcome } from './load';

/** What a run cost, as counter deltas over the run (per request once summarised). */
export interface RunCosts {
  /** Statements the server ran for the app's database (`pg_stat_statements`), if available. */
  statements: number | null;
  /** Statements the app process sent (counted in the app). */
  appStatements: number;
  /** Commit records in the WAL (durable commits, each a WAL flush); `null` without pg_walinspect. */
  commits: number | null;
  /** Transaction ids assigned: transactions and subtransactions that wrote. */
  xids: number;
  walBytes: number;
  cpuMs: { app: number; postgres: number | null; redis: number | null; loadGenerator: number };
}

/** One measured run of one scenario in one round: what the load generator saw, and its costs. */
export interface RunMeasurement extends Omit<LoadOutcome, 'keys' | 'acknowledged'>, RunCosts {
  scenario: string;
  round: number;
  /** Position of the run within its round (rounds are shuffled). */
  position: number;
  /** Per-statement calls (from `pg_stat_statements`), if available. */
  statementCalls: StatementCalls[] | null;
  check: ExactlyOnceCheck;
}

import type { StatementCalls } from './database-monitor';
import type { ExactlyOnceCheck } from './exactly-once';

/** One measured run of one scenario in one round. */
export interface RunMeasurement {
  scenario: string;
  round: number;
  /** Position of the run within its round (rounds are shuffled). */
  position: number;
  durationS: number;
  sent: number;
  completed: number;
  rps: number;
  latencyMs: { p50: number; p99: number; mean: number };
  status2xx: number;
  status409: number;
  statusOther: Record<string, number>;
  errors: number;
  timeouts: number;
  replayed: number;
  /** Statements the server ran for the app's database (`pg_stat_statements`), if available. */
  statements: number | null;
  /** Statements the app process sent (counted in the app). */
  appStatements: number;
  /** Commit records in the WAL (durable commits, each a WAL flush); `null` without pg_walinspect. */
  commits: number | null;
  /** Transaction ids assigned: transactions and subtransactions that wrote. */
  xids: number;
  walBytes: number;
  cpuMs: { app: number; postgres: number | null; loadGenerator: number };
  /** Per-statement calls (from `pg_stat_statements`), if available. */
  statementCalls: StatementCalls[] | null;
  check: ExactlyOnceCheck;
}

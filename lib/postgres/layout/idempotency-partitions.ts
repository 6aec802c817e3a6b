import { Logger } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { guardCheckedOut } from '../driver/checked-out';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';
import { SQLSTATE, asError } from '../driver/sqlstate';
import { type TableShape, readTableShape } from './table-shape';

/** How a table partitioned by expiry is kept (resolved, in milliseconds). */
export interface IdempotencyPartitioning {
  /** Width of one partition's range of `expires_at`. */
  partitionMs: number;
  /** How far past now partitions must exist. */
  aheadMs: number;
  /**
   * How far past now the expiry of a claim made now lies (the module's `ttlMs` + `lockTimeoutMs`):
   * partitions must reach at least this far, or claims fail.
   */
  claimReachMs: number;
  /**
   * How often partitions ahead are created while the application runs; 0 for never (the
   * application calls `maintain()` itself).
   */
  maintenanceIntervalMs: number;
  /**
   * Longest wait of one DETACH ... CONCURRENTLY for the transactions using the table; past it the
   * partition stays pending until a later pass, which keeps a long transaction from holding up
   * the passes that create partitions.
   */
  detachTimeoutMs: number;
}

interface Partition {
  /** As `regclass` prints it: quoted where needed, schema-qualified when off the search path. */
  name: string;
  /** A DETACH ... CONCURRENTLY of it was interrupted and must be finished. */
  pending: boolean;
  /** The planner's estimate; -1 before the first ANALYZE. */
  rows: number;
  /** Bounds in epoch milliseconds; -Infinity / Infinity for MINVALUE / MAXVALUE. */
  lower: number;
  upper: number;
}

/** Longest wait of a FINALIZE (see dropExpiredLocked). */
const FINALIZE_TIMEOUT_MS = 5_000;

/**
 * A lock per table and purpose ($1 table, $2 purpose), named by the table's oid: instances that
 * spell the table differently (with or without its schema) still take the same lock.
 */
const LOCK_SQL = (call: string) =>
  `SELECT ${call}(hashtext(to_regclass($1)::oid::text || ':' || $2))`;

/** Partition boundaries are aligned to this instant (UTC), as date_bin would align them. */
const ORIGIN_MS = Date.UTC(2000, 0, 1);

const PARTITIONS_SQL = `
SELECT c.oid::regclass::text AS name, i.inhdetachpending AS pending, c.reltuples::float8 AS rows,
       CASE WHEN b.bound LIKE 'FOR VALUES FROM (MINVALUE)%' THEN '-Infinity'::float8
            ELSE extract(epoch FROM (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz)::float8 * 1000
       END AS lower,
       CASE WHEN b.bound LIKE '%TO (MAXVALUE)' THEN 'Infinity'::float8
            ELSE extract(epoch FROM (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz)::float8 * 1000
       END AS upper
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
 CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
 WHERE i.inhparent = to_regclass($1)
 ORDER BY lower`;

/** How far a table's partitions reach, and what waits in them to be dropped (see `coverage`). */
export interface PartitionCoverage {
  /** How far past now partitions exist without a gap, in milliseconds; 0 when none holds now. */
  aheadMs: number;
  /** Partitions whose whole range has passed. */
  expiredPartitions: number;
  /** The planner's estimate of the rows in them (0 for those never analysed). */
  expiredRowsEstimate: number;
}

/**
 * Keeps a table partitioned by expiry (`createPartitionedIdempotencyTableSql`): creates the
 * partitions that claims will write into, ahead of time, and drops those whose every row has
 * expired. Dropping replaces the single table's batched DELETE: no per-row WAL, no dead rows.
 *
 * Partitions are created empty and then attached, which locks the parent only against other DDL;
 * `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE lock and queue every claim behind
 * the longest open transaction. Expired partitions are detached CONCURRENTLY, for the same reason.
 */
export class IdempotencyPartitions {
  private readonly logger = new Logger('IdempotencyPartitions');
  /**
   * Each maintenance connection held: how it goes back to the pool (see guardCheckedOut), and the
   * DateStyle and TimeZone its session had, put back on release.
   */
  private readonly held = new WeakMap<
    PoolClient,
    { release: (error?: Error) => void; session: Record<string, string> }
  >();

  constructor(
    private readonly pool: () => Pool,
    private readonly table: string = IDEMPOTENCY_TABLE,
    private readonly settings: IdempotencyPartitioning,
  ) {}

  /**
   * Checks that the table is partitioned the way the store needs, then creates the partitions
   * ahead (at start-up). Returns what it read of the table.
   */
  async prepare(): Promise<TableShape> {
    const shape = await readTableShape(this.pool(), this.table);
    const { kind, key, hasDefault } = shape;
    const create = 'Create it with createPartitionedIdempotencyTableSql()';
    if (kind === null) {
      throw new Error(`nestjs-idempotency: the table ${this.table} does not exist. ${create}.`);
    }
    if (kind !== 'p') {
      throw new Error(
        `nestjs-idempotency: the option partitioning needs ${this.table} to be partitioned by expires_at (createPartitionedIdempotencyTableSql()); it is an ordinary table.`,
      );
    }
    // Partitions of any other key would be dropped while they hold live keys.
    if (key !== 'RANGE (expires_at)') {
      throw new Error(
        `nestjs-idempotency: ${this.table} is partitioned by ${key}, not by RANGE (expires_at). ${create}.`,
      );
    }
    if (hasDefault) {
      throw new Error(
        `nestjs-idempotency: ${this.table} has a DEFAULT partition, which stops partitions from being created and detached. Move its rows out and drop it.`,
      );
    }
    await this.createAhead();
    return shape;
  }

  /**
   * Creates the missing partitions from the current one to `aheadMs` past now. Instances starting
   * together each wait for the one creating (a short transaction), so none serves before the
   * partitions exist; when nothing is missing, which is nearly always, no lock is taken.
   */
  async createAhead(): Promise<void> {
    const client = await this.connect();
    try {
      if ((await this.missingRanges(client)).length > 0) {
        await client.query('BEGIN');
        await client.query(LOCK_SQL('pg_advisory_xact_lock'), [this.table, 'create-partitions']);
        // Under READ COMMITTED this reads what the lock's previous holder created.
        for (const [lower, upper] of await this.missingRanges(client)) {
          await this.create(client, lower, upper);
        }
        await client.query('COMMIT');
      }
      await this.release(client);
    } catch (error) {
      // The connection goes, and with it the open transaction and its lock.
      this.drop(client, asError(error));
      throw error;
    }
  }

  /**
   * How far the partitions reach past now, and what has expired in them, from the catalog alone
   * (no table is read). `client` must print timestamps in ISO style and UTC (see `connect`).
   */
  async coverage(client: PoolClient): Promise<PartitionCoverage> {
    const partitions = await this.list(client);
    const now = await this.databaseNow(client);
    let reach = now;
    // Sorted by lower bound: each partition that starts within the covered span extends it. One
    // whose detach is pending no longer takes new rows.
    for (const partition of partitions) {
      if (!partition.pending && partition.lower <= reach && partition.upper > reach) {
        reach = partition.upper;
      }
    }
    const expired = partitions.filter((partition) => partition.upper <= now);
    return {
      aheadMs: reach - now,
      expiredPartitions: expired.length,
      expiredRowsEstimate: expired.reduce((sum, partition) => sum + Math.max(partition.rows, 0), 0),
    };
  }

  /** The ranges without a partition, between the current partition and `aheadMs` from now. */
  private async missingRanges(client: PoolClient): Promise<[number, number][]> {
    const partitions = await this.list(client);
    const now = await this.databaseNow(client);
    const { partitionMs, aheadMs } = this.settings;
    const missing: [number, number][] = [];
    let lower = ORIGIN_MS + Math.floor((now - ORIGIN_MS) / partitionMs) * partitionMs;
    while (lower < now + aheadMs) {
      const upper = lower + partitionMs;
      // Partitions of another width, or the old table attached by the migration, are left as
      // they are: only the gaps around them are filled, so ranges neither overlap nor leave holes.
      const first = partitions
        .filter((p) => p.lower < upper && p.upper > lower)
        .sort((a, b) => a.lower - b.lower)[0];
      if (!first) {
        missing.push([lower, upper]);
        lower = upper;
        continue;
      }
      if (first.lower > lower) {
        missing.push([lower, first.lower]);
      }
      lower = first.upper;
    }
    return missing;
  }

  /** Inside the caller's transaction: an empty table, attached (no ACCESS EXCLUSIVE on the parent). */
  private async create(client: PoolClient, lower: number, upper: number): Promise<void> {
    const name = this.partitionName(lower);
    const from = new Date(lower).toISOString();
    const to = new Date(upper).toISOString();
    await client.query(`CREATE TABLE ${name} (LIKE ${this.table} INCLUDING DEFAULTS)`);
    await client.query(
      `ALTER TABLE ${this.table} ATTACH PARTITION ${name} FOR VALUES FROM ('${from}') TO ('${to}')`,
    );
    this.logger.log(`Created partition ${name} for expiries from ${from} to ${to}.`);
  }

  /**
   * Detaches and drops the partitions whose whole range has passed, one instance at a time (a
   * session lock: DETACH ... CONCURRENTLY cannot run inside a transaction). Returns their estimated
   * row count, 0 when another instance holds the pass.
   */
  async dropExpired(): Promise<number> {
    const client = await this.connect();
    const lock = [this.table, 'drop-partitions'];
    try {
      const { rows } = await client.query<{ got: boolean }>(
        `${LOCK_SQL('pg_try_advisory_lock')} AS got`,
        lock,
      );
      let dropped = 0;
      if (rows[0].got) {
        try {
          dropped = await this.dropExpiredLocked(client);
        } finally {
          await client.query(LOCK_SQL('pg_advisory_unlock'), lock);
        }
      }
      await this.release(client);
      return dropped;
    } catch (error) {
      // Dropping the connection also frees the session lock if the unlock did not run.
      this.drop(client, asError(error));
      throw error;
    }
  }

  private async dropExpiredLocked(client: PoolClient): Promise<number> {
    const now = await this.databaseNow(client);
    let rows = 0;
    for (const partition of await this.list(client)) {
      // A live partition is never dropped, even one whose detach someone else left pending.
      if (partition.upper > now) {
        continue;
      }
      // CONCURRENTLY waits for the transactions that lock the table, holding no lock on it
      // meanwhile. FINALIZE, which finishes one that was cut off (a second CONCURRENTLY would be
      // refused), waits for every older snapshot in the database while it holds a lock that
      // partition creation needs: it gets a short leash.
      const timeoutMs = partition.pending
        ? Math.min(FINALIZE_TIMEOUT_MS, this.settings.detachTimeoutMs)
        : this.settings.detachTimeoutMs;
      try {
        await this.withStatementTimeout(client, timeoutMs, () =>
          client.query(
            `ALTER TABLE ${this.table} DETACH PARTITION ${partition.name} ${partition.pending ? 'FINALIZE' : 'CONCURRENTLY'}`,
          ),
        );
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === SQLSTATE.queryCanceled) {
          this.logger.warn(
            `Detaching ${partition.name} waited ${timeoutMs} ms for older transactions; a later pass finishes it.`,
          );
        } else if (code === SQLSTATE.objectNotInPrerequisiteState) {
          // PostgreSQL allows one pending detach per table: someone else's, of a partition that
          // is still live, blocks every drop until it is finished by hand.
          this.logger.warn(
            `Cannot detach ${partition.name}: ${String((error as { message?: unknown }).message)}. Finish the pending detach of ${this.table} (DETACH PARTITION ... FINALIZE).`,
          );
        } else {
          throw error;
        }
        break;
      }
      await client.query(`DROP TABLE ${partition.name}`);
      rows += Math.max(partition.rows, 0);
      this.logger.log(`Dropped expired partition ${partition.name}.`);
    }
    return rows;
  }

  /**
   * A pool connection for maintenance. Partition bounds are read back from their text form, which
   * follows the session's DateStyle and TimeZone: with a non-ISO style they print with zone
   * abbreviations, which PostgreSQL before 18 may resolve to another zone (IST, CST). ISO and UTC
   * print numeric offsets. The connection's own values are put back before it returns to the pool
   * (RESET would drop what the application set on it).
   */
  private async connect(): Promise<PoolClient> {
    const client = await this.pool().connect();
    const held = { release: guardCheckedOut(client), session: {} };
    this.held.set(client, held);
    try {
      held.session = await setSession(client, { DateStyle: 'ISO, YMD', TimeZone: 'UTC' });
    } catch (error) {
      this.drop(client, asError(error));
      throw error;
    }
    return client;
  }

  /** Gives a maintenance connection back with the session's own settings. */
  private async release(client: PoolClient): Promise<void> {
    await setSession(client, this.held.get(client)?.session ?? {});
    this.drop(client);
  }

  /** Gives a maintenance connection back as it is; with an error, the pool discards it. */
  private drop(client: PoolClient, error?: Error): void {
    const held = this.held.get(client);
    this.held.delete(client);
    if (held) {
      held.release(error);
    } else {
      // Not held (released already): pg-pool refuses a second release loudly.
      client.release(error);
    }
  }

  private async withStatementTimeout<T>(
    client: PoolClient,
    timeoutMs: number,
    run: () => Promise<T>,
  ): Promise<T> {
    const previous = await setSession(client, {
      statement_timeout: String(Math.max(1, Math.round(timeoutMs))),
    });
    try {
      return await run();
    } finally {
      await setSession(client, previous);
    }
  }

  private async list(client: PoolClient): Promise<Partition[]> {
    const { rows } = await client.query<Partition>(PARTITIONS_SQL, [this.table]);
    // Bounds that cannot be read (a DEFAULT partition, refused at start-up but attachable later)
    // would compare as anything: such a partition is neither dropped nor counted as cover.
    return rows.filter((partition) => partition.lower !== null && partition.upper !== null);
  }

  private async databaseNow(client: PoolClient): Promise<number> {
    const { rows } = await client.query<{ now: number }>(
      'SELECT extract(epoch FROM now())::float8 * 1000 AS now',
    );
    return rows[0].now;
  }

  /** `<table>_pYYYYMMDDtHHMMSS` of the lower bound (UTC), in the table's schema. */
  private partitionName(lower: number): string {
    const stamp = new Date(lower)
      .toISOString()
      .replace(/\.\d+Z$/, '')
      .replace(/[-:]/g, '')
      .replace('T', 't');
    const parts = this.table.split('.');
    // 63 characters is PostgreSQL's limit for a name; the stamp takes 17 of them.
    parts[parts.length - 1] = `${parts[parts.length - 1].slice(0, 46)}_p${stamp}`;
    return parts.join('.');
  }
}

/**
 * Sets session settings on `client` (for the session, not a transaction) and returns what they
 * were, to be set back the same way. Each setting is read before it is written: a target list is
 * evaluated left to right.
 */
async function setSession(
  client: PoolClient,
  settings: Record<string, string>,
): Promise<Record<string, string>> {
  const entries = Object.entries(settings);
  if (entries.length === 0) {
    return {};
  }
  const columns = entries.map(
    (_, i) =>
      `current_setting($${2 * i + 1}) AS previous_${i}, set_config($${2 * i + 1}, $${2 * i + 2}, false)`,
  );
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${columns.join(', ')}`,
    entries.flat(),
  );
  return Object.fromEntries(entries.map(([name], i) => [name, rows[0][`previous_${i}`]]));
}

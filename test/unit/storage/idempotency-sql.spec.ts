import { idempotencyStatements } from '../../../lib/postgres/sql/idempotency.sql';
import { assertTableName } from '../../../lib/postgres/sql/table-name';
import { partitionedStatements } from '../../../lib/postgres/sql/partitioned-idempotency.sql';
import {
  createIdempotencyTableSql,
  createPartitionedIdempotencyTableSql,
} from '../../../lib/postgres/schema/idempotency-table.sql';
import { partitionedMigrationSql } from '../../../lib/postgres/schema/partitioned-migration.sql';

describe('table names', () => {
  it.each(['idempotency_records', 'Idem2', '_t', 'billing.idempotency_records', 'a'.repeat(63)])(
    'accepts the identifier %s',
    (name) => {
      expect(() => assertTableName(name)).not.toThrow();
    },
  );

  it.each([
    '',
    '1table',
    'a'.repeat(64),
    'idem; DROP TABLE users',
    'idem--',
    '"quoted"',
    'a.b.c',
    'idem records',
    "idem'",
    'idé',
  ])('refuses %j, which would be spliced into SQL', (name) => {
    expect(() => assertTableName(name)).toThrow(/tableName must be an identifier/);
    expect(() => idempotencyStatements(name)).toThrow();
    expect(() => createIdempotencyTableSql(name)).toThrow();
    expect(() => createPartitionedIdempotencyTableSql(name)).toThrow();
    expect(() => partitionedStatements(name)).toThrow();
  });

  it('gives each table its own prepared statement names and texts', () => {
    const standard = idempotencyStatements();
    const custom = idempotencyStatements('billing.idem');
    expect(standard.namePrefix).toBe('nestjs_idempotency');
    expect(custom.namePrefix).toMatch(/^nestjs_idempotency_[0-9a-f]{8}$/);
    expect(custom.claim).toContain('INSERT INTO billing.idem AS r');
    expect(custom.claim).not.toContain('idempotency_records');
    expect(createIdempotencyTableSql('billing.idem')).toContain(
      'CREATE INDEX IF NOT EXISTS idem_expires_at_idx ON billing.idem (expires_at)',
    );
  });
});

describe('the partitioned layout', () => {
  it('partitions by expiry, with the expiry in the primary key', () => {
    const ddl = createPartitionedIdempotencyTableSql('billing.idem');
    expect(ddl).toContain('CONSTRAINT idem_pkey PRIMARY KEY (scope, key, expires_at)');
    expect(ddl).toContain(') PARTITION BY RANGE (expires_at);');
    expect(ddl).not.toContain('DEFAULT partition');
  });

  it('takes the key lock in every write and never claims with ON CONFLICT', () => {
    const partitioned = partitionedStatements('billing.idem');
    expect(partitioned.claim).toContain('INSERT INTO billing.idem');
    expect(partitioned.claim).not.toContain('ON CONFLICT');
    expect(partitioned.transactionalClaim).toContain(
      "current_setting('nestjs_idempotency.key_locked', true)",
    );
    expect(partitioned.lockKey).toContain('pg_advisory_xact_lock');
    expect(partitioned.tryLockKey).toContain('pg_try_advisory_xact_lock');
    // Writes name the claim's partition instead of probing every one, from the exact milliseconds.
    for (const write of [partitioned.complete, partitioned.markNotReplayable]) {
      expect(write).toMatch(
        /expires_at = \(timestamptz 'epoch' \+ \$\d::bigint \* interval '1 millisecond'\)/,
      );
      // A late write never revives an expired claim that a newer one replaced.
      expect(write).toContain('o.lock_token <> $3::uuid');
    }
    expect(partitioned.claim).toContain('(extract(epoch FROM expires_at) * 1000)::bigint::text');
    // The lock refuses to run outside READ COMMITTED, where it would come after the snapshot.
    expect(partitioned.lockKey).toContain(
      "current_setting('transaction_isolation') = 'read committed'",
    );
    // The row-by-row purge stays off partitioned tables, where a ctid names rows of every partition.
    expect(idempotencyStatements('billing.idem').purge).toContain('DELETE FROM ONLY billing.idem');
    expect(idempotencyStatements('billing.idem').purge).toContain(
      'SELECT ctid FROM ONLY billing.idem',
    );
  });
});

describe('partitionedMigrationSql', () => {
  const boundary = new Date('2026-12-01T00:00:00Z');

  it('names its objects after a schema-qualified table and attaches it up to the boundary', () => {
    const {
      prepare,
      switch: swap,
      partitionedTable,
    } = partitionedMigrationSql(boundary, 'billing.idem');
    expect(partitionedTable).toBe('billing.idem_partitioned');
    expect(prepare[0]).toBe(
      'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idem_key_expiry_idx ON billing.idem (scope, key, expires_at)',
    );
    expect(prepare[1]).toContain(
      "ALTER TABLE billing.idem ADD CONSTRAINT idem_before_partitioning CHECK (expires_at < '2026-12-01T00:00:00.000Z') NOT VALID",
    );
    expect(prepare[1]).toContain("set_config('lock_timeout', '5s', true)");
    expect(prepare[1]).not.toContain('BEGIN');
    // The partitioned table appears only with the switch: before it, nothing can claim there.
    expect(prepare.join('\n')).not.toContain('CREATE TABLE');
    expect(swap).toContain('CREATE TABLE billing.idem_partitioned (');
    expect(swap).not.toContain('RENAME');
    expect(swap).toContain(
      "ALTER TABLE billing.idem_partitioned ATTACH PARTITION billing.idem FOR VALUES FROM (MINVALUE) TO ('2026-12-01T00:00:00.000Z');",
    );
    expect(swap.trim().startsWith('BEGIN;')).toBe(true);
    expect(swap.trim().endsWith('COMMIT;')).toBe(true);
  });

  it('refuses an invalid boundary, a table name too long for its suffixes, and unsafe names', () => {
    expect(() => partitionedMigrationSql(new Date('nonsense'))).toThrow(/not a valid date/);
    expect(() => partitionedMigrationSql(boundary, 'a'.repeat(44))).toThrow(/at most 43/);
    expect(() => partitionedMigrationSql(boundary, 'idem; DROP TABLE users')).toThrow(
      /tableName must be an identifier/,
    );
  });
});

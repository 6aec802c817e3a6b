import {
  assertTableName,
  idempotencyStatements,
} from '../../../lib/storage/postgres/idempotency.sql';
import { createIdempotencyTableSql } from '../../../lib/storage/postgres/create-idempotency-records.migration';

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

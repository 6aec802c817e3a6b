import type { DataSource } from 'typeorm';
import { beginStatement } from '../../../lib/postgres/typeorm/typeorm-transaction-state';

const dataSource = (isolationLevel?: string) => ({ options: { isolationLevel } }) as DataSource;

describe('beginStatement', () => {
  it('is a plain BEGIN without a configured isolation level', () => {
    expect(beginStatement(dataSource())).toBe('BEGIN');
  });

  it.each(['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'])(
    "carries the DataSource's isolationLevel %s, as startTransaction() would",
    (level) => {
      expect(beginStatement(dataSource(level))).toBe(`BEGIN ISOLATION LEVEL ${level}`);
    },
  );

  it('refuses anything else rather than splice it into SQL', () => {
    expect(() => beginStatement(dataSource('SERIALIZABLE; DROP TABLE x'))).toThrow(
      /unsupported isolation level/,
    );
  });
});

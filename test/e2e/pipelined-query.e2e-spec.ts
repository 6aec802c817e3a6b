import pg from 'pg';
import {
  PipelineError,
  type PipelineStatement,
  runPipeline,
} from '../../lib/postgres/driver/pipelined-query';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/** How many times PostgreSQL said "ready for query" to this client: one per round trip. */
function countRoundTrips(client: pg.PoolClient): { readonly count: number } {
  const counter = { count: 0 };
  const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  connection.on('readyForQuery', () => counter.count++);
  return counter;
}

const INSERT: PipelineStatement = {
  name: 'pipeline_test_insert',
  text: 'INSERT INTO items (label) VALUES ($1) RETURNING id, label',
  values: ['first'],
};

describe.each([
  ['one round trip', false],
  ["node-postgres's pipeline mode (one by one)", true],
])('runPipeline: %s', (_, pipelineMode) => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query('CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL UNIQUE)');
    pool = new pg.Pool({ connectionString: db.url, max: 2, ...{ pipeline: pipelineMode } });
  });

  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  beforeEach(() => db.query('TRUNCATE items'));

  it('runs BEGIN and a prepared statement together, keeping the transaction open', async () => {
    const client = await pool.connect();
    try {
      const trips = countRoundTrips(client);
      const [begin, insert] = await runPipeline(client, [{ text: 'BEGIN' }, INSERT]);

      expect(begin).toEqual({ rows: [], rowCount: 0 });
      expect(insert.rowCount).toBe(1);
      expect(insert.rows).toEqual([{ id: expect.any(Number), label: 'first' }]);
      expect(trips.count).toBe(pipelineMode ? 2 : 1);
      // Not committed yet: other connections do not see the row.
      expect(await db.query('SELECT * FROM items')).toEqual([]);

      const [update, commit] = await runPipeline(client, [
        { text: 'UPDATE items SET label = $1', values: ['renamed'] },
        { text: 'COMMIT' },
      ]);
      expect(update.rowCount).toBe(1);
      expect(commit.rowCount).toBe(0);
      expect(await db.query('SELECT label FROM items')).toEqual([{ label: 'renamed' }]);
    } finally {
      client.release();
    }
  });

  it('prepares a named statement once per connection', async () => {
    const client = await pool.connect();
    try {
      for (const label of ['a', 'b', 'c']) {
        await runPipeline(client, [{ ...INSERT, values: [label] }]);
      }
      const prepared = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'pipeline_test_insert'",
      );
      expect(prepared.rows[0].n).toBe(1);
      expect(await db.query('SELECT label FROM items ORDER BY id')).toEqual([
        { label: 'a' },
        { label: 'b' },
        { label: 'c' },
      ]);
    } finally {
      client.release();
    }
  });

  it('opens a transaction with an isolation level before it prepares anything', async () => {
    // PostgreSQL refuses an isolation level once a snapshot was taken, and preparing a SELECT or
    // an INSERT takes one: the named statement's Parse must not go ahead of the BEGIN.
    const client = await pool.connect();
    try {
      const [, row] = await runPipeline(client, [
        { text: 'BEGIN ISOLATION LEVEL SERIALIZABLE' },
        {
          name: 'pipeline_test_isolation',
          text: 'SELECT current_setting($1) AS level',
          values: ['transaction_isolation'],
        },
      ]);
      expect(row.rows).toEqual([{ level: 'serializable' }]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });

  it('prepares each of several named statements of one pipeline once', async () => {
    const client = await pool.connect();
    try {
      const statements: PipelineStatement[] = [
        { name: 'pipeline_test_one', text: 'SELECT 1 AS one' },
        { text: 'SELECT 2 AS two' },
        { name: 'pipeline_test_three', text: 'SELECT 3 AS three' },
      ];
      for (let round = 0; round < 2; round++) {
        const results = await runPipeline(client, statements);
        expect(results.map((result) => result.rows)).toEqual([
          [{ one: 1 }],
          [{ two: 2 }],
          [{ three: 3 }],
        ]);
      }
      const prepared = await client.query<{ name: string }>(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pipeline_test_%e' ORDER BY name",
      );
      expect(prepared.rows).toEqual([
        { name: 'pipeline_test_one' },
        { name: 'pipeline_test_three' },
      ]);
    } finally {
      client.release();
    }
  });

  it('skips everything after a failed statement: a COMMIT behind it never runs', async () => {
    const client = await pool.connect();
    try {
      await runPipeline(client, [{ text: 'BEGIN' }, INSERT]);
      const failure = await runPipeline(client, [
        { text: 'INSERT INTO items (label) VALUES ($1)', values: ['first'] },
        { text: 'COMMIT' },
      ]).catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(PipelineError);
      expect((failure as PipelineError).statementIndex).toBe(0);
      expect((failure as { code?: string }).code).toBe('23505');
      // The transaction is still open, and aborted: nothing was committed.
      await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await client.query('ROLLBACK');
      expect(await db.query('SELECT * FROM items')).toEqual([]);
      // The connection serves the next query as usual.
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      client.release();
    }
  });

  it('reports a named statement that does not parse, and parses it again next time', async () => {
    const client = await pool.connect();
    try {
      const broken = { name: 'pipeline_test_missing', text: 'SELECT * FROM missing_table' };
      for (let attempt = 0; attempt < 2; attempt++) {
        const failure = await runPipeline(client, [broken]).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(PipelineError);
        expect((failure as { code?: string }).code).toBe('42P01');
      }
      await db.query('CREATE TABLE missing_table (id int)');
      const [result] = await runPipeline(client, [broken]);
      expect(result).toEqual({ rows: [], rowCount: 0 });
    } finally {
      client.release();
      await db.query('DROP TABLE IF EXISTS missing_table');
    }
  });

  it('parses result columns with the usual type parsers, bytea included', async () => {
    const client = await pool.connect();
    try {
      const [row] = await runPipeline(client, [
        {
          text: 'SELECT $1::bytea AS body, 7::smallint AS status, 1.5::float8 AS ms, NULL::text AS gone',
          values: [Buffer.from('{"ok":true}')],
        },
      ]);
      expect(row.rows).toEqual([
        { body: Buffer.from('{"ok":true}'), status: 7, ms: 1.5, gone: null },
      ]);
    } finally {
      client.release();
    }
  });
});

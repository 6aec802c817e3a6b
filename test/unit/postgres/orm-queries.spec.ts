import {
  drizzleQuery,
  entityManagerQuery,
  knexQuery,
  kyselyQuery,
  prismaQuery,
} from '../../../lib/postgres/pool';
import knex, { type Knex } from 'knex';

/*
 * How each data layer's `query` turns the store's `$n` statements into that layer's call. Against
 * stand-ins recording what they were given; the same functions run against PostgreSQL through
 * each adapter in test/e2e/cls-transactional.e2e-spec.ts.
 */

const ROWS = [{ outcome: 'claimed' }];

/** A stand-in method that records its arguments and answers `result`. */
function recorder<T>(result: T) {
  const calls: unknown[][] = [];
  const fn = async (...args: unknown[]) => {
    calls.push(args);
    return result;
  };
  return Object.assign(fn, { calls });
}
const STATEMENT = 'SELECT $1::text AS a, $2::bytea AS b, $1::text AS again';
const VALUES = ['key', Buffer.from('fp')];

describe('knexQuery', () => {
  it('binds each $n as a ? in order, repeating a value used twice, and answers the rows', async () => {
    const raw = recorder({ rows: ROWS });
    await expect(knexQuery({ raw }, STATEMENT, VALUES)).resolves.toBe(ROWS);
    expect(raw.calls).toEqual([
      ['SELECT ?::text AS a, ?::bytea AS b, ?::text AS again', ['key', VALUES[1], 'key']],
    ]);
  });

  it('escapes a literal question mark, which Knex would take for a placeholder', async () => {
    const raw = recorder({ rows: [] });
    await knexQuery({ raw }, "SELECT '{}'::jsonb ? 'a', $1", [1]);
    expect(raw.calls).toEqual([["SELECT '{}'::jsonb \\? 'a', ?", [1]]]);
  });

  it('keeps a placeholder right after a question mark, or after another placeholder, apart from it', async () => {
    // Knex itself, without a connection: the SQL and bindings it would send to pg.
    const client = knex({ client: 'pg' });
    const toNative = async (sql: string, bindings: unknown[]) => ({
      rows: [
        client
          .raw(sql, bindings as Knex.RawBinding[])
          .toSQL()
          .toNative(),
      ],
    });
    const sent = async (text: string, values: unknown[]) =>
      (await knexQuery({ raw: toNative }, text, values))[0];
    await expect(sent("SELECT '{}'::jsonb ?$1, $2", ['a', 2])).resolves.toEqual({
      sql: "SELECT '{}'::jsonb ? $1, $2",
      bindings: ['a', 2],
    });
    await expect(sent('SELECT $1$2', ['a', 'b'])).resolves.toEqual({
      sql: 'SELECT $1 $2',
      bindings: ['a', 'b'],
    });
    await client.destroy();
  });
});

describe('kyselyQuery', () => {
  it("sends the statement as written through Kysely's CompiledQuery.raw", async () => {
    const compiled = { compiled: true };
    const rawCalls: unknown[][] = [];
    const factory = { raw: (...args: unknown[]) => (rawCalls.push(args), compiled) };
    const executeQuery = recorder({ rows: ROWS });
    await expect(kyselyQuery(factory)({ executeQuery }, STATEMENT, VALUES)).resolves.toBe(ROWS);
    expect(rawCalls).toEqual([[STATEMENT, VALUES]]);
    expect(executeQuery.calls).toEqual([[compiled]]);
  });
});

describe('drizzleQuery', () => {
  it('joins the raw text between placeholders with a bound parameter for each', async () => {
    const sql = {
      raw: (text: string) => ({ raw: text }),
      param: (value: unknown) => ({ param: value }),
      join: (chunks: unknown[]) => ({ joined: chunks }),
    };
    const execute = recorder({ rows: ROWS });
    await expect(drizzleQuery(sql)({ execute }, STATEMENT, VALUES)).resolves.toBe(ROWS);
    expect(execute.calls).toEqual([
      [
        {
          joined: [
            { raw: 'SELECT ' },
            { param: 'key' },
            { raw: '::text AS a, ' },
            { param: VALUES[1] },
            { raw: '::bytea AS b, ' },
            { param: 'key' },
            { raw: '::text AS again' },
          ],
        },
      ],
    ]);
  });
});

describe('entityManagerQuery', () => {
  it('answers the rows TypeORM gives for a SELECT or an INSERT', async () => {
    const query = recorder(ROWS);
    await expect(entityManagerQuery({ query }, STATEMENT, VALUES)).resolves.toBe(ROWS);
    expect(query.calls).toEqual([[STATEMENT, VALUES]]);
  });

  it('answers the rows of the [rows, rowCount] TypeORM gives for an UPDATE or a DELETE', async () => {
    const query = recorder([ROWS, 1]);
    await expect(entityManagerQuery({ query }, 'UPDATE t SET a = 1 RETURNING a', [])).resolves.toBe(
      ROWS,
    );
  });
});

describe('prismaQuery', () => {
  it('sends the statement and its values as they are, and answers the rows', async () => {
    const $queryRawUnsafe = recorder(ROWS);
    await expect(prismaQuery({ $queryRawUnsafe }, STATEMENT, VALUES)).resolves.toBe(ROWS);
    expect($queryRawUnsafe.calls).toEqual([[STATEMENT, ...VALUES]]);
  });
});

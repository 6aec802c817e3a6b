import knex, { type Knex } from 'knex';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import {
  type ClsTransactionalAdapterOptions,
  type KnexClsTransactionOptions,
  type KyselyClsTransactionOptions,
  knexTransactionalAdapter,
  kyselyTransactionalAdapter,
} from '../../lib/postgres/pool';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The module's @nestjs-cls/transactional adapters for Kysely and Knex, driven as that plugin drives
 * them (optionsFactory, then wrapWithTransaction / wrapWithNestedTransaction with a setTx), on a
 * real PostgreSQL: what commits, what rolls back, which transaction the function sees. Their use
 * behind idempotent routes is in cls-transactional.e2e-spec.ts.
 */

/** Each subject's pool: few, so that a connection the adapter fails to give back is missed. */
const POOL_SIZE = 2;

type IsolationOptions = KyselyClsTransactionOptions & KnexClsTransactionOptions;

interface Subject {
  name: string;
  /** The adapter's transaction handling for a fresh connection to `url`. */
  open(url: string): {
    options: ClsTransactionalAdapterOptions<unknown, IsolationOptions>;
    close(): Promise<void>;
  };
  /** One statement on a connection or transaction of the subject's kind. */
  run(on: unknown, text: string): Promise<Record<string, unknown>[]>;
}

const SUBJECTS: Subject[] = [
  {
    name: 'kysely',
    open: (url) => {
      const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE });
      const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
      const adapter = kyselyTransactionalAdapter<Kysely<unknown>>({ connectionToken: 'db' });
      return {
        options: adapter.optionsFactory(db) as ClsTransactionalAdapterOptions<
          unknown,
          IsolationOptions
        >,
        close: () => db.destroy(),
      };
    },
    run: async (on, text) =>
      (await sql.raw<Record<string, unknown>>(text).execute(on as Kysely<unknown>)).rows,
  },
  {
    name: 'knex',
    open: (url) => {
      const db = knex({ client: 'pg', connection: url, pool: { min: 0, max: POOL_SIZE } });
      const adapter = knexTransactionalAdapter<Knex>({ connectionToken: 'db' });
      return {
        options: adapter.optionsFactory(db) as ClsTransactionalAdapterOptions<
          unknown,
          IsolationOptions
        >,
        close: () => db.destroy(),
      };
    },
    run: async (on, text) =>
      ((await (on as Knex).raw(text)) as { rows: Record<string, unknown>[] }).rows,
  },
];

describe.each(SUBJECTS)('the module’s $name adapter for @nestjs-cls/transactional', (subject) => {
  let db: TestDatabase;
  let adapter: ReturnType<Subject['open']>;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query('CREATE TABLE notes (body text NOT NULL)');
    await db.query('CREATE TABLE once (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
    adapter = subject.open(db.url);
  });

  afterAll(async () => {
    await adapter?.close();
    await db?.drop();
  });

  const bodies = async (like: string) =>
    (
      await db.query<{ body: string }>('SELECT body FROM notes WHERE body LIKE $1 ORDER BY body', [
        like,
      ])
    ).map((row) => row.body);

  /** Runs `work` as the plugin would, with the transaction it set. */
  const inTransaction = (work: (tx: unknown) => Promise<unknown>, options?: IsolationOptions) => {
    let tx: unknown;
    return adapter.options.wrapWithTransaction(
      options,
      () => work(tx),
      (set) => {
        tx = set;
      },
    );
  };

  const nested = (outer: unknown, work: (tx: unknown) => Promise<unknown>) => {
    let tx: unknown;
    return adapter.options.wrapWithNestedTransaction(
      undefined,
      () => work(tx),
      (set) => {
        tx = set;
      },
      outer,
    );
  };

  it('commits when the function resolves, and hands back its result', async () => {
    const result = await inTransaction(async (tx) => {
      await subject.run(tx, "INSERT INTO notes VALUES ('commit-1')");
      // Not visible outside before the commit.
      expect(await bodies('commit-%')).toEqual([]);
      return 'done';
    });
    expect(result).toBe('done');
    expect(await bodies('commit-%')).toEqual(['commit-1']);
  });

  it('rolls back when the function rejects, and rethrows its error', async () => {
    const failure = new Error('the work failed');
    await expect(
      inTransaction(async (tx) => {
        await subject.run(tx, "INSERT INTO notes VALUES ('rollback-1')");
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await bodies('rollback-%')).toEqual([]);
  });

  it('runs every statement of the function on one transaction', async () => {
    await inTransaction(async (tx) => {
      const [first] = await subject.run(tx, 'SELECT txid_current()::text AS id');
      const [second] = await subject.run(tx, 'SELECT txid_current()::text AS id');
      expect(second.id).toBe(first.id);
    });
  });

  it('sets the isolation level it is given', async () => {
    await inTransaction(
      async (tx) => {
        const [row] = await subject.run(tx, 'SHOW transaction_isolation');
        expect(row.transaction_isolation).toBe('serializable');
      },
      { isolationLevel: 'serializable' },
    );
  });

  it('gives the connection itself outside a transaction', async () => {
    const rows = await subject.run(adapter.options.getFallbackInstance(), 'SELECT 1 AS one');
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('runs a nested transaction in a savepoint: its rollback keeps the outer work, its commit joins it', async () => {
    await inTransaction(async (outer) => {
      await subject.run(outer, "INSERT INTO notes VALUES ('nested-outer')");
      await expect(
        nested(outer, async (inner) => {
          await subject.run(inner, "INSERT INTO notes VALUES ('nested-undone')");
          throw new Error('inner failed');
        }),
      ).rejects.toThrow('inner failed');
      await nested(outer, (inner) =>
        subject.run(inner, "INSERT INTO notes VALUES ('nested-kept')"),
      );
      // Still inside the outer transaction: nothing is visible from outside yet.
      expect(await bodies('nested-%')).toEqual([]);
    });
    expect(await bodies('nested-%')).toEqual(['nested-kept', 'nested-outer']);
  });

  it('undoes a committed nested transaction with the outer one', async () => {
    await expect(
      inTransaction(async (outer) => {
        await nested(outer, (inner) =>
          subject.run(inner, "INSERT INTO notes VALUES ('undone-inner')"),
        );
        throw new Error('outer failed');
      }),
    ).rejects.toThrow('outer failed');
    expect(await bodies('undone-%')).toEqual([]);
  });

  it('gives its connection back when the COMMIT itself fails', async () => {
    // A deferred unique constraint is checked at COMMIT: each transaction's commit fails.
    for (let attempt = 0; attempt < POOL_SIZE + 1; attempt++) {
      await expect(
        within(
          5_000,
          inTransaction(async (tx) => {
            await subject.run(tx, 'INSERT INTO once VALUES (1), (1)');
          }),
        ),
      ).rejects.toMatchObject({ code: '23505' });
    }
    await expect(
      within(5_000, subject.run(adapter.options.getFallbackInstance(), 'SELECT 1 AS one')),
    ).resolves.toEqual([{ one: 1 }]);
    expect(await db.query('SELECT id FROM once')).toEqual([]);
  });
});

/** `work`, or a rejection once `ms` have passed: a pool that lost its connections waits forever. */
function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

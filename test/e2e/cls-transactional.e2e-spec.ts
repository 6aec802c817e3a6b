import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import swc from '@swc/core';
import request from 'supertest';
import { REPLAYED_HEADER } from '../../lib/idempotency.constants';
import { createIdempotencyTableSql } from '../../lib/postgres/pool';
import { ADAPTERS } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { type SampleAppProcess, startSampleAppProcess } from '../utils/sample-app-process';
import { waitFor } from '../utils/wait-for';

/*
 * Transactional routes on pgPoolStore() inside the application's own @nestjs-cls/transactional
 * transactions, for each adapter the app knows (TypeORM, Drizzle and Prisma's own; the module's for Kysely and Knex), over HTTP on both platforms: the claim, the
 * handler's writes (a @Transactional() service's, through txHost.tx) and the stored response
 * commit together or not at all. The app (test/utils/cls-transactional-app.ts) runs in a process
 * of its own, compiled here: see there why.
 */

const ENTRY = resolve(process.cwd(), 'dist/test/utils/cls-transactional-app.js');
/** The app and what it imports beside dist/lib: its integrations, and Prisma's generated client. */
const SOURCES = [
  'test/utils/cls-transactional-app.ts',
  'test/utils/cls-integrations',
  'examples/prisma/generated',
].flatMap((path) =>
  path.endsWith('.ts')
    ? [path]
    : readdirSync(path, { recursive: true, encoding: 'utf8' })
        .filter((file) => file.endsWith('.ts'))
        .map((file) => join(path, file)),
);
const REPLAYED = REPLAYED_HEADER.toLowerCase();

const TABLES = `
CREATE TABLE accounts (id integer PRIMARY KEY);
INSERT INTO accounts VALUES (1);
CREATE TABLE transfers (
  key        text    NOT NULL,
  amount     integer NOT NULL,
  account_id integer NOT NULL REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE attempts (key text NOT NULL);`;

beforeAll(() => {
  for (const source of SOURCES) {
    // The same decorator settings as Jest's transform (jest.config.js), as CommonJS for Node.
    const { code } = swc.transformFileSync(source, {
      jsc: {
        target: 'es2022',
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
      },
      module: { type: 'commonjs' },
    });
    const output = resolve(process.cwd(), 'dist', source.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(output), { recursive: true });
    writeFileSync(output, code);
  }
});

describe.each(['typeorm', 'drizzle', 'kysely', 'knex', 'prisma'])(
  'pgPoolStore with @nestjs-cls/transactional (%s adapter)',
  (integration) => {
    let db: TestDatabase;

    beforeAll(async () => {
      db = await createTestDatabase();
      await db.query(createIdempotencyTableSql());
      await db.query(TABLES);
    });

    afterAll(async () => {
      await db?.drop();
    });

    describe.each(ADAPTERS)('on %s', (adapter) => {
      let app: SampleAppProcess;
      const start = () =>
        startSampleAppProcess({
          entry: ENTRY,
          env: { DATABASE_URL: db.url, CLS_INTEGRATION: integration, HTTP_ADAPTER: adapter },
        });

      beforeAll(async () => {
        app = await start();
      });

      afterAll(async () => {
        await app?.stop();
      });

      const count = async (sqlText: string, key: string) =>
        Number((await db.query<{ n: string }>(sqlText, [key]))[0].n);
      const transfers = (key: string) =>
        count('SELECT count(*) AS n FROM transfers WHERE key = $1', key);
      const attempts = (key: string) =>
        count('SELECT count(*) AS n FROM attempts WHERE key = $1', key);
      const records = (key: string) =>
        db.query<{ state: string }>('SELECT state FROM idempotency_records WHERE key = $1', [key]);
      /** Transactions holding a write lock on transfers: a handler's insert not yet ended. */
      const transferWriters = async () =>
        Number(
          (
            await db.query<{ n: string }>(
              `SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                WHERE c.relname = 'transfers' AND l.mode = 'RowExclusiveLock'`,
            )
          )[0].n,
        );
      const post = (key: string, body: object, query = '', on = app, path = '/transfers') =>
        request(on.url)
          .post(`${path}${query}`)
          .set('Idempotency-Key', key)
          .send({ key, ...body });
      const keyOf = (what: string) => `${what}-${integration}-${adapter}`;

      it('runs the handler once for 30 parallel duplicates, which wait and replay: one row, one record', async () => {
        const key = keyOf('burst');
        const responses = await Promise.all(
          Array.from({ length: 30 }, () => post(key, { amount: 5 }, '?delayMs=200')),
        );
        expect(await transfers(key)).toBe(1);
        expect(await attempts(key)).toBe(1);
        const created = responses.filter((r) => r.status === 201);
        expect(created.filter((r) => r.headers[REPLAYED] === undefined)).toHaveLength(1);
        expect(new Set(created.map((r) => r.text)).size).toBe(1);
        // Transactional routes make duplicates wait for the first one (concurrency 'wait').
        expect(responses.map((r) => r.status)).toEqual(responses.map(() => 201));
        expect(await records(key)).toEqual([{ state: 'completed' }]);
      });

      it('leaves nothing when the handler throws after its first write; the retry runs once', async () => {
        const key = keyOf('thrown');
        const failed = await post(key, { amount: 5 }, '?fail=after-write');
        expect(failed.status).toBe(500);
        expect(await attempts(key)).toBe(1);
        expect(await transfers(key)).toBe(0);
        expect(await records(key)).toEqual([]);
        const retried = await post(key, { amount: 5 });
        expect(retried.status).toBe(201);
        expect(retried.headers[REPLAYED]).toBeUndefined();
        expect(await transfers(key)).toBe(1);
        expect(await attempts(key)).toBe(2);
      });

      it('commits a stored 4xx with its writes, and replays it', async () => {
        const key = keyOf('refused');
        const first = await post(key, { amount: -1 });
        expect(first.status).toBe(400);
        const again = await post(key, { amount: -1 });
        expect(again.status).toBe(400);
        expect(again.headers[REPLAYED]).toBe('true');
        expect(again.text).toBe(first.text);
        expect(await attempts(key)).toBe(1);
        expect(await transfers(key)).toBe(1);
        expect(await records(key)).toEqual([{ state: 'completed' }]);
      });

      it('commits the record and the row together: a failed COMMIT keeps neither, and says 503', async () => {
        const key = keyOf('commit');
        // No account 2: the deferred foreign key fails at COMMIT, after the response was written.
        const failed = await post(key, { amount: 5, account: 2 });
        expect(failed.status).toBe(503);
        expect(failed.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(await attempts(key)).toBe(1);
        expect(await transfers(key)).toBe(0);
        expect(await records(key)).toEqual([]);
        // Nothing was kept, so the retry runs again (and fails again the same way).
        expect((await post(key, { amount: 5, account: 2 })).status).toBe(503);
        expect(await attempts(key)).toBe(2);
      });

      it('stores a refusal without its writes (rollbackOnClientError), never freeing the key: 6 keys x 10 duplicates, one run each', async () => {
        // Each first execution holds a pooled connection and takes a second for its attempt row:
        // six keys stay within the app's pool of 20.
        const keys = Array.from({ length: 6 }, (_, i) => keyOf(`discard-${i}`));
        const responses = await Promise.all(
          keys.flatMap((key) =>
            Array.from({ length: 10 }, () =>
              post(key, { amount: 5 }, '?delayMs=150', app, '/transfers/refused'),
            ),
          ),
        );
        for (const key of keys) {
          expect([key, await attempts(key)]).toEqual([key, 1]);
          expect(await transfers(key)).toBe(0);
          expect(await records(key)).toEqual([{ state: 'completed' }]);
        }
        for (const response of responses) {
          expect(response.status).toBe(400);
        }
      });

      it('stores a refusal alone after a failed statement of the handler aborted its transaction', async () => {
        const key = keyOf('poisoned');
        const first = await post(key, { amount: 5 }, '?poison=1', app, '/transfers/refused');
        expect(first.status).toBe(400);
        expect(first.body.message).toBe(`refused ${key}`);
        const again = await post(key, { amount: 5 }, '?poison=1', app, '/transfers/refused');
        expect(again.status).toBe(400);
        expect(again.headers[REPLAYED]).toBe('true');
        expect(await attempts(key)).toBe(1);
        expect(await transfers(key)).toBe(0);
        expect(await records(key)).toEqual([{ state: 'completed' }]);
      });

      it('warns once per route about a query on the pool outside its transaction, never about txHost.tx', async () => {
        await post(keyOf('warned-1'), { amount: 1 });
        await post(keyOf('warned-2'), { amount: 1 });
        const quiet = await post(keyOf('quiet'), { amount: 1 }, '', app, '/transfers/quiet');
        expect(quiet.status).toBe(201);
        expect(await transfers(keyOf('quiet'))).toBe(1);
        const warnings = app
          .output()
          .split('\n')
          .filter((line) => line.includes('outside its idempotency transaction'));
        // The route's handler counts its attempts with a query on the pool.
        expect(
          warnings.filter((line) => line.includes('TransfersController.create ')),
        ).toHaveLength(1);
        expect(warnings.filter((line) => line.includes('TransfersController.quiet'))).toEqual([]);
      });

      it('leaves nothing when the process is killed mid-transaction; the retry runs once', async () => {
        const key = keyOf('killed');
        const victim = await start();
        try {
          const pending = post(key, { amount: 5 }, '?delayMs=10000', victim).catch(() => undefined);
          // The handler has written in its transaction once that holds a lock on transfers.
          await waitFor(async () => (await transferWriters()) > 0, 10_000);
          await victim.kill('SIGKILL');
          await pending;
        } finally {
          await victim.kill('SIGKILL').catch(() => undefined);
        }
        // PostgreSQL rolls the transaction back when it sees the connection gone.
        await waitFor(async () => (await transferWriters()) === 0, 10_000);
        expect(await attempts(key)).toBe(1);
        expect(await transfers(key)).toBe(0);
        expect(await records(key)).toEqual([]);
        const retried = await post(key, { amount: 5 });
        expect(retried.status).toBe(201);
        expect(retried.headers[REPLAYED]).toBeUndefined();
        expect(await transfers(key)).toBe(1);
        expect(await records(key)).toEqual([{ state: 'completed' }]);
      });
    });
  },
);

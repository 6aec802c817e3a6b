import type { FixtureIdempotencyOptions } from './fixtures/fixture-idempotency';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Response } from 'supertest';
import { IdempotencyPurger, IdempotencyStore } from '../../lib';
import { partitionedMigrationSql } from '../../lib/postgres';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp, expectStartFailure } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const TEST_TIMEOUT_MS = 40_000;
/** Short enough for a test to outlive the boundary; the boundary lies past ttl + lease. */
const OPTIONS: FixtureIdempotencyOptions = { ttlMs: 3000, lockTimeoutMs: 2000 };
const BOUNDARY_AHEAD_MS = 8000;

describe.each(ADAPTERS)('migrating to a partitioned table in place (%s)', (adapter) => {
  let db: TestDatabase;
  let before: TestApp;
  let after: TestApp | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    before = await createTestApp(
      adapter,
      FixtureAppModule.register({ databaseUrl: db.url, idempotency: OPTIONS }),
    );
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all([before?.close(), after?.close()]);
    await db?.drop();
  });

  const count = async (sql: string, values: unknown[] = []) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (route: string, key: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2', [route, key]);
  const order = (app: TestApp, key: string) =>
    app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'a' });
  const slowOrder = (app: TestApp, key: string) =>
    app
      .http()
      .post('/orders/short-lease')
      .set('Idempotency-Key', key)
      .set('X-Delay-Ms', '2500')
      .send({});
  /** A replay: marked, and byte for byte the first answer. */
  const expectReplayOf = (replay: Response, first: Response) => {
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
  };
  const databaseNow = async () => (await db.query<{ now: Date }>('SELECT now()'))[0].now;

  it(
    'keeps every key across the switch without copying, and drops the old table after the boundary',
    async () => {
      const done = await order(before, 'done');
      expect(done.status).toBe(201);
      // A finished key whose TTL already ran out: the new layout must run it again.
      const expiredToken = randomUUID();
      await db.query(
        `INSERT INTO idempotency_records (scope, key, fingerprint, state, lock_token,
                                          response_status, response_headers, response_body,
                                          completed_at, expires_at)
         SELECT scope, 'expired', fingerprint, 'completed', $1::uuid, 201, '{}',
                '\\x7b7d'::bytea, now(), now() - interval '1 second'
           FROM idempotency_records WHERE key = 'done'`,
        [expiredToken],
      );

      const boundary = new Date(
        Math.ceil(((await databaseNow()).getTime() + BOUNDARY_AHEAD_MS) / 1000) * 1000,
      );
      const migration = partitionedMigrationSql(boundary);
      // The switch refuses to run before the preparation, and changes nothing.
      const early = new pg.Client({ connectionString: db.url });
      await early.connect();
      try {
        await expect(early.query(migration.switch)).rejects.toThrow(
          /run the migration's prepare statements first/,
        );
      } finally {
        await early.end();
      }
      expect(await db.query("SELECT to_regclass('idempotency_records_partitioned') AS t")).toEqual([
        { t: null },
      ]);
      for (const statement of migration.prepare) {
        await db.query(statement);
      }
      // Running the preparation twice is harmless.
      for (const statement of migration.prepare) {
        await db.query(statement);
      }
      expect((await order(before, 'prepared')).status).toBe(201);
      // 'done' replays after the switch, and both keys must still be live at the purge below, which
      // on a loaded machine comes later than their 3 s TTL allows (2.5 s of it are the slow request;
      // the steps around it took 1.9 s with a load average of 10). They stay live until just before
      // the boundary, the latest expiry the old table's CHECK allows.
      const justBeforeBoundary = new Date(boundary.getTime() - 1);
      await db.query(
        `UPDATE idempotency_records SET expires_at = $1 WHERE key IN ('done', 'prepared')`,
        [justBeforeBoundary],
      );
      const newLayout = FixtureAppModule.register({
        databaseUrl: db.url,
        idempotency: {
          ...OPTIONS,
          tableName: migration.partitionedTable,
          partitioning: { partitionMs: 1000, aheadMs: 20_000, maintenanceIntervalMs: 0 },
          // The test runs the passes itself; a timed purge comes after half an hour at the soonest.
          purgeIntervalMs: 3_600_000,
        },
      });
      // An instance deployed with the new settings too early finds no table, and does not start
      // (it would otherwise claim keys that the ordinary table holds).
      await expectStartFailure(
        adapter,
        newLayout,
        /idempotency_records_partitioned does not exist/,
      );

      // A request of the ordinary layout still running while the table switches.
      const inFlight = slowOrder(before, 'in-flight').then((response) => response);
      await waitFor(async () => (await executions('short-lease', 'in-flight')) === 1);
      const rowsBefore = await count('SELECT count(*) AS n FROM idempotency_records');
      await db.query(migration.switch);
      expect(migration.partitionedTable).toBe('idempotency_records_partitioned');
      expect(await count(`SELECT count(*) AS n FROM ${migration.partitionedTable}`)).toBe(
        rowsBefore,
      );

      after = await createTestApp(adapter, newLayout);

      // Keys written before the switch replay from the old table, now a partition.
      const replay = await order(after, 'done');
      expectReplayOf(replay, done);
      expect(await executions('create', 'done')).toBe(1);

      // The ordinary layout refuses new claims from the switch on; nothing of them runs.
      const refused = await order(before, 'old-layout');
      expect(refused.status).toBe(503);
      expect(await executions('create', 'old-layout')).toBe(0);

      // Its request in flight completes, and the new layout replays it.
      const finished = await inFlight;
      expect(finished.status).toBe(201);
      const inFlightReplay = await slowOrder(after, 'in-flight');
      expectReplayOf(inFlightReplay, finished);
      expect(await executions('short-lease', 'in-flight')).toBe(1);

      // An expired key runs again, and new keys run once under parallel duplicates (their rows
      // may land in the old table's range, which no longer has a unique (scope, key)).
      const again = await order(after, 'expired');
      expect(again.status).toBe(201);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
      await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          Promise.all(Array.from({ length: 6 }, () => order(after!, `new-${i}`))),
        ),
      );
      for (let i = 0; i < 5; i++) {
        expect(await executions('create', `new-${i}`)).toBe(1);
      }

      // A purge pass of the old layout reaches the old table alone: it deletes the expired row
      // there, and no live row of the partitioned table (a ctid is unique only per partition).
      // Which rows are live is set here rather than left to the machine's speed: every row but the
      // expired one stays live until just before the boundary, and the new keys move to a partition
      // of the new layout past it. A partition's first rows have the ctids of the old table's first
      // rows, the expired one among them: a purge by ctid that reached the partitioned table would
      // delete live rows there.
      await db.query(
        `UPDATE ${migration.partitionedTable}
            SET expires_at = CASE WHEN key LIKE 'new-%' THEN $2::timestamptz ELSE $1::timestamptz END
          WHERE lock_token IS DISTINCT FROM $3::uuid`,
        [justBeforeBoundary, new Date(boundary.getTime() + 5000), expiredToken],
      );
      const liveSharingACtid = `SELECT count(*) AS n
          FROM ${migration.partitionedTable} AS p JOIN ONLY idempotency_records AS old
               ON old.ctid = p.ctid AND old.tableoid <> p.tableoid
         WHERE old.expires_at <= now() AND p.expires_at > now()`;
      expect(await count(liveSharingACtid)).toBeGreaterThan(0);
      const live = `SELECT count(*) AS n FROM ${migration.partitionedTable} WHERE expires_at > now()`;
      const liveBefore = await count(live);
      expect(await before.app.get(IdempotencyPurger).purgeNow()).toBe(1);
      expect(await count(live)).toBe(liveBefore);
      for (let i = 0; i < 5; i++) {
        expect((await order(after, `new-${i}`)).headers['idempotent-replayed']).toBe('true');
      }

      // A key finished shortly before the boundary expires after it, in a partition of the new
      // layout: it outlives the old table.
      await waitFor(
        async () => (await databaseNow()).getTime() >= boundary.getTime() - 1500,
        15_000,
      );
      const straddling = await order(after, 'straddling');
      expect(straddling.status).toBe(201);

      // Once the boundary has passed, the purge drops the old table like any expired partition.
      await waitFor(async () => (await databaseNow()).getTime() >= boundary.getTime(), 15_000);
      await after.app.get(IdempotencyStore).maintain();
      await after.app.get(IdempotencyPurger).purgeNow();
      expect(await db.query("SELECT to_regclass('idempotency_records') AS t")).toEqual([
        { t: null },
      ]);
      const straddlingReplay = await order(after, 'straddling');
      expectReplayOf(straddlingReplay, straddling);
      expect((await order(after, 'late')).status).toBe(201);
    },
    TEST_TIMEOUT_MS,
  );
});

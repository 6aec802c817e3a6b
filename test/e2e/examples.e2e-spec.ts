import type { DynamicModule } from '@nestjs/common';
import { DrizzleExampleModule } from '../../examples/drizzle/drizzle-example.module';
import { KnexExampleModule } from '../../examples/knex/knex-example.module';
import { KyselyExampleModule } from '../../examples/kysely/kysely-example.module';
import { CREATE_ORDERS_TABLE_SQL } from '../../examples/orders.sql';
import { CREATE_IDEMPOTENCY_TABLE_SQL } from '../../examples/prisma/idempotency-table';
import { PrismaExampleModule } from '../../examples/prisma/prisma-example.module';
import { TypeOrmExampleModule } from '../../examples/typeorm/typeorm-example.module';
import { REPLAYED_HEADER } from '../../lib/idempotency.constants';
import { createIdempotencyTableSql } from '../../lib/postgres/pool';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The examples under examples/, each an app on another ORM, started as they are written against
 * a real PostgreSQL: each must run its route once per key.
 */

/** Each example's name, its app, and its keys' table when not the default one. */
const EXAMPLES: [string, (url: string) => DynamicModule, string?][] = [
  ['Drizzle', (url) => DrizzleExampleModule.forRoot(url)],
  ['Kysely', (url) => KyselyExampleModule.forRoot(url)],
  ['Knex', (url) => KnexExampleModule.forRoot(url)],
  ['Prisma', (url) => PrismaExampleModule.forRoot(url), CREATE_IDEMPOTENCY_TABLE_SQL],
  ['TypeORM', (url) => TypeOrmExampleModule.forRoot(url)],
];

describe.each(EXAMPLES)('the %s example', (_, moduleFor, idempotencyTableSql) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(idempotencyTableSql ?? createIdempotencyTableSql());
    await db.query(CREATE_ORDERS_TABLE_SQL);
  });

  afterAll(async () => {
    await db?.drop();
  });

  describe.each(ADAPTERS)('on %s', (adapter) => {
    let app: TestApp;

    beforeAll(async () => {
      app = await createTestApp(adapter, moduleFor(db.url));
    });

    afterAll(async () => {
      await app?.close();
    });

    const rowsOf = async (customer: string) =>
      Number(
        (
          await db.query<{ n: string }>('SELECT count(*) AS n FROM orders WHERE customer = $1', [
            customer,
          ])
        )[0].n,
      );

    it('creates one order for ten parallel requests with one key, and replays it', async () => {
      const customer = `parallel-${adapter}`;
      const order = { customer, amount: 42 };
      const responses = await Promise.all(
        Array.from({ length: 10 }, () =>
          app.http().post('/orders').set('Idempotency-Key', customer).send(order),
        ),
      );
      expect(await rowsOf(customer)).toBe(1);
      const created = responses.filter((r) => r.status === 201);
      expect(created.length).toBeGreaterThan(0);
      expect(new Set(created.map((r) => r.body.id)).size).toBe(1);
      for (const r of responses.filter((r) => r.status !== 201)) {
        expect(r.status).toBe(409);
      }
      const replay = await app.http().post('/orders').set('Idempotency-Key', customer).send(order);
      expect(replay.status).toBe(201);
      expect(replay.headers[REPLAYED_HEADER.toLowerCase()]).toBe('true');
      expect(replay.body).toEqual({ id: created[0].body.id, customer, amount: 42 });
      expect(await rowsOf(customer)).toBe(1);
    });
  });
});

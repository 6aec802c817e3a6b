import { createHash, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import type { IdempotencyOutcomeEvent } from '../../lib';
import { type FixtureAppOptions, FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const PROBLEM = /^application\/problem\+json/;

describe.each(ADAPTERS)('module configuration (%s)', (adapter) => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** Starts a fixture app on this file's database for one describe block, closed after it. */
  const useApp = (options: Omit<FixtureAppOptions, 'databaseUrl'>): (() => TestApp) => {
    let app: TestApp | undefined;
    beforeAll(async () => {
      app = await createTestApp(
        adapter,
        FixtureAppModule.register({ ...options, databaseUrl: db.url }),
      );
    });
    afterAll(async () => {
      await app?.close();
    });
    return () => {
      if (!app) {
        throw new Error('the app did not start');
      }
      return app;
    };
  };

  /** Keys are unique per test so that the apps sharing this database never see each other's. */
  const newKey = (label: string) => `${label}-${adapter}-${randomUUID()}`;

  const count = async (sql: string, values: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (route: string, key: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2', [route, key]);
  const keylessExecutions = (route: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key IS NULL', [route]);
  const records = (key: string) =>
    count('SELECT count(*) AS n FROM idempotency_records WHERE key = $1', [key]);

  describe('global interceptor with autoMethods POST', () => {
    const app = useApp({
      extras: { useGlobalInterceptor: true },
      idempotency: { autoMethods: ['POST'] },
    });

    it('makes an undecorated POST idempotent when it carries a key', async () => {
      const key = newKey('auto');
      const first = await app().http().post('/auto').set('Idempotency-Key', key).send({ a: 1 });
      const second = await app().http().post('/auto').set('Idempotency-Key', key).send({ a: 1 });

      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(second.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await executions('auto', key)).toBe(1);
      expect(await records(key)).toBe(1);
    });

    it('runs an undecorated POST without a key every time (a key is optional there)', async () => {
      const before = await keylessExecutions('auto');
      const first = await app().http().post('/auto').send({});
      const second = await app().http().post('/auto').send({});

      expect([first.status, second.status]).toEqual([201, 201]);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
      expect(await keylessExecutions('auto')).toBe(before + 2);
    });

    it('leaves a @SkipIdempotency() route alone even with a key', async () => {
      const key = newKey('skip');
      const first = await app().http().post('/auto/skip').set('Idempotency-Key', key).send({});
      const second = await app().http().post('/auto/skip').set('Idempotency-Key', key).send({});

      expect([first.status, second.status]).toEqual([201, 201]);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
      expect(second.text).not.toBe(first.text);
      expect(await executions('auto-skip', key)).toBe(2);
      expect(await records(key)).toBe(0);
    });

    it('handles a decorated route once although two interceptors apply to it', async () => {
      // Were the route's own interceptor to claim the key again, it would find it in flight: 409.
      const key = newKey('decorated');
      const first = await app().http().post('/auto/decorated').set('Idempotency-Key', key).send({});
      const second = await app()
        .http()
        .post('/auto/decorated')
        .set('Idempotency-Key', key)
        .send({});

      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(second.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await executions('auto-decorated', key)).toBe(1);
      expect(await records(key)).toBe(1);
    });

    it('still requires a key on a decorated route', async () => {
      const before = await keylessExecutions('auto-decorated');
      const response = await app().http().post('/auto/decorated').send({});

      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toMatch(PROBLEM);
      expect((response.body as { type: string }).type).toBe(
        'urn:nestjs-idempotency:problem:key-missing',
      );
      expect(await keylessExecutions('auto-decorated')).toBe(before);
    });
  });

  describe('global interceptor without autoMethods', () => {
    const app = useApp({ extras: { useGlobalInterceptor: true } });

    it('does not make an undecorated POST idempotent, even with a key', async () => {
      const key = newKey('not-auto');
      const first = await app().http().post('/auto').set('Idempotency-Key', key).send({});
      const second = await app().http().post('/auto').set('Idempotency-Key', key).send({});

      expect([first.status, second.status]).toEqual([201, 201]);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
      expect(await executions('auto', key)).toBe(2);
      expect(await records(key)).toBe(0);
    });

    it('keeps decorated routes idempotent', async () => {
      const key = newKey('decorated-only');
      await app().http().post('/auto/decorated').set('Idempotency-Key', key).send({});
      const second = await app()
        .http()
        .post('/auto/decorated')
        .set('Idempotency-Key', key)
        .send({});

      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(await executions('auto-decorated', key)).toBe(1);
    });
  });

  describe('forRootAsync', () => {
    const app = useApp({
      async: true,
      // The extras are read outside the factory; autoMethods comes from the factory.
      extras: { useGlobalInterceptor: true },
      idempotency: { autoMethods: ['POST'] },
    });

    it('replays like forRoot', async () => {
      const key = newKey('async');
      const first = await app().http().post('/orders').set('Idempotency-Key', key).send({ q: 1 });
      const second = await app().http().post('/orders').set('Idempotency-Key', key).send({ q: 1 });

      expect(first.status).toBe(201);
      expect(second.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(second.headers.location).toBe(first.headers.location);
      expect(await executions('create', key)).toBe(1);
    });

    it('applies useGlobalInterceptor and the factory’s autoMethods', async () => {
      const key = newKey('async-auto');
      await app().http().post('/auto').set('Idempotency-Key', key).send({});
      const second = await app().http().post('/auto').set('Idempotency-Key', key).send({});

      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(await executions('auto', key)).toBe(1);
    });
  });

  describe('custom headerName', () => {
    const app = useApp({ idempotency: { headerName: 'X-Request-Key' } });

    // The fixture records the Idempotency-Key header, which this app ignores: the stored record
    // (by key) and the keyless executions count show what happened.
    it('takes the key from X-Request-Key, case-insensitively', async () => {
      const key = newKey('custom');
      const before = await keylessExecutions('create');
      const first = await app().http().post('/orders').set('X-Request-Key', key).send({ q: 1 });
      const second = await app().http().post('/orders').set('x-request-key', key).send({ q: 1 });

      expect(first.status).toBe(201);
      expect(second.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await keylessExecutions('create')).toBe(before + 1);
      expect(await records(key)).toBe(1);
    });

    it('ignores Idempotency-Key: without X-Request-Key the key is missing', async () => {
      const key = newKey('default-header');
      const response = await app().http().post('/orders').set('Idempotency-Key', key).send({});

      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toMatch(PROBLEM);
      const problem = response.body as { type: string; detail: string };
      expect(problem.type).toBe('urn:nestjs-idempotency:problem:key-missing');
      expect(problem.detail).toContain('X-Request-Key');
      expect(await executions('create', key)).toBe(0);
      expect(await records(key)).toBe(0);
    });

    it('does not let Idempotency-Key take part in the key', async () => {
      const key = newKey('custom-only');
      const first = await app()
        .http()
        .post('/orders')
        .set('X-Request-Key', key)
        .set('Idempotency-Key', 'one')
        .send({});
      const second = await app()
        .http()
        .post('/orders')
        .set('X-Request-Key', key)
        .set('Idempotency-Key', 'two')
        .send({});

      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.text).toBe(first.text);
      expect(await records('one')).toBe(0);
    });
  });

  describe('onOutcome hook', () => {
    const events: IdempotencyOutcomeEvent[] = [];
    let hookThrows = false;
    const app = useApp({
      idempotency: {
        onOutcome: (event) => {
          events.push(event);
          if (hookThrows) {
            throw new Error('metrics backend down');
          }
        },
      },
    });

    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const eventsOf = (key: string) => events.filter((event) => event.keyHash === sha256(key));
    const outcomesOf = (key: string) => eventsOf(key).map((event) => event.outcome);

    /** The raw key must not appear anywhere in an event, however deeply nested. */
    const expectNoRawKey = (key: string) => {
      for (const event of eventsOf(key)) {
        expect(inspect(event, { depth: null })).not.toContain(key);
      }
    };

    it('reports claimed, completed, replayed and mismatch with the key only as its hash', async () => {
      const key = newKey('hook-secret');
      const first = await app()
        .http()
        .post('/orders')
        .set('Idempotency-Key', key)
        .set('X-Client', 'alice')
        .send({ q: 1 });
      expect(outcomesOf(key)).toEqual(['claimed', 'completed']);

      const retry = await app()
        .http()
        .post('/orders')
        .set('Idempotency-Key', key)
        .set('X-Client', 'alice')
        .send({ q: 1 });
      const other = await app()
        .http()
        .post('/orders')
        .set('Idempotency-Key', key)
        .set('X-Client', 'alice')
        .send({ q: 2 });

      expect([first.status, retry.status, other.status]).toEqual([201, 201, 422]);
      expect(eventsOf(key)).toEqual([
        expect.objectContaining({ outcome: 'claimed' }),
        expect.objectContaining({ outcome: 'completed', status: 201 }),
        expect.objectContaining({ outcome: 'replayed', status: 201 }),
        expect.objectContaining({ outcome: 'mismatch', status: 422 }),
      ]);
      for (const event of eventsOf(key)) {
        expect(event).toMatchObject({
          keyHash: sha256(key),
          scope: 'alice',
          method: 'POST',
          path: '/orders',
        });
        expect(event.keyHash).toMatch(/^[0-9a-f]{64}$/);
      }
      expectNoRawKey(key);
    });

    it('reports conflict for a duplicate while the first is in flight', async () => {
      const key = newKey('hook-inflight');
      const first = app()
        .http()
        .post('/orders?delayMs=1500')
        .set('Idempotency-Key', key)
        .send({})
        .then((response) => response);
      await waitFor(async () => (await executions('create', key)) === 1);
      const duplicate = await app()
        .http()
        .post('/orders?delayMs=1500')
        .set('Idempotency-Key', key)
        .send({});

      expect(duplicate.status).toBe(409);
      expect((await first).status).toBe(201);
      expect(outcomesOf(key)).toEqual(['claimed', 'conflict', 'completed']);
      expect(eventsOf(key)[1]).toMatchObject({ status: 409, scope: '' });
      expectNoRawKey(key);
    });

    it('reports released after a 500, with its status and error', async () => {
      const key = newKey('hook-500');
      const response = await app()
        .http()
        .post('/orders/status/500')
        .set('Idempotency-Key', key)
        .send({});

      expect(response.status).toBe(500);
      expect(outcomesOf(key)).toEqual(['claimed', 'released']);
      expect(eventsOf(key)[1]).toMatchObject({ status: 500, error: expect.any(Error) });
      expect(await records(key)).toBe(0);
      expectNoRawKey(key);
    });

    it('keeps serving requests when the hook throws', async () => {
      const key = newKey('hook-throws');
      hookThrows = true;
      try {
        const first = await app().http().post('/orders').set('Idempotency-Key', key).send({});
        const retry = await app().http().post('/orders').set('Idempotency-Key', key).send({});

        expect(first.status).toBe(201);
        expect(retry.status).toBe(201);
        expect(retry.headers['idempotent-replayed']).toBe('true');
        expect(retry.text).toBe(first.text);
      } finally {
        hookThrows = false;
      }
      // The hook did run (and throw) at every step.
      expect(outcomesOf(key)).toEqual(['claimed', 'completed', 'replayed']);
      expect(await executions('create', key)).toBe(1);
      expect(await records(key)).toBe(1);
    });
  });
});

import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import type { IdempotencyOutcomeEvent } from '../../lib';
import { SafeDefaultsAppModule } from './fixtures/safe-defaults-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const PROBLEM = /^application\/problem\+json/;
const VALID = { amount: 5, currency: 'EUR' };
const INVALID = { amount: 0, currency: '' };

describe.each(ADAPTERS)('safe defaults in real apps (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;
  let globalApp: TestApp;
  const events: IdempotencyOutcomeEvent[] = [];
  const globalEvents: IdempotencyOutcomeEvent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(
      adapter,
      SafeDefaultsAppModule.register({ databaseUrl: db.url, events }),
    );
    globalApp = await createTestApp(
      adapter,
      SafeDefaultsAppModule.register({ databaseUrl: db.url, events: globalEvents, global: true }),
    );
  });

  afterAll(async () => {
    await Promise.all([app?.close(), globalApp?.close()]);
    await db?.drop();
  });

  const newKey = (label: string) => `${label}-${adapter}-${randomUUID()}`;
  const count = async (sql: string, values: unknown[]) =>
    Number((await db.query<{ n: string }>(sql, values))[0].n);
  const executions = (route: string, key: string) =>
    count('SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2', [route, key]);
  const records = (key: string) =>
    count('SELECT count(*) AS n FROM idempotency_records WHERE key = $1', [key]);
  const hashOf = (key: string) => createHash('sha256').update(key).digest('hex');

  describe('the default scope with JWT-style users ({ sub, username })', () => {
    const as = (sub: string, key: string, body: object = { note: 'same' }) =>
      app
        .http()
        .post('/safe/whoami')
        .set('Authorization', `Bearer ${sub}`)
        .set('Idempotency-Key', key)
        .send(body);

    it('gives two users with the same key and body a result each', async () => {
      const key = newKey('order-1');
      const alice = await as('alice', key);
      const bob = await as('bob', key);
      expect(alice.status).toBe(201);
      expect(bob.status).toBe(201);
      expect(bob.headers['idempotent-replayed']).toBeUndefined();
      expect(alice.body.sub).toBe('alice');
      expect(bob.body.sub).toBe('bob');
      expect(await executions('safe-whoami', key)).toBe(2);
      // Each replays their own.
      const aliceAgain = await as('alice', key);
      expect(aliceAgain.headers['idempotent-replayed']).toBe('true');
      expect(aliceAgain.text).toBe(alice.text);
      expect(await executions('safe-whoami', key)).toBe(2);
    });

    it('does not tell one user that another used the key (no 422 for another body)', async () => {
      const key = newKey('order-2');
      expect((await as('alice', key, { note: 'first' })).status).toBe(201);
      const bob = await as('bob', key, { note: 'other' });
      expect(bob.status).toBe(201);
      expect(bob.body.sub).toBe('bob');
    });

    it('refuses a user with neither id nor sub, stores nothing, and logs it once per route', async () => {
      const errors = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      try {
        const key = newKey('nameless');
        for (let i = 0; i < 2; i++) {
          const response = await app
            .http()
            .post('/safe/whoami')
            .set('X-Nameless', 'yes')
            .set('Idempotency-Key', key)
            .send({});
          expect(response.status).toBe(500);
          expect(response.headers['content-type']).toMatch(PROBLEM);
          expect(response.body.type).toBe('urn:nestjs-idempotency:problem:scope-unresolved');
          expect(response.body.detail).toMatch(/scope option/);
        }
        expect(await records(key)).toBe(0);
        expect(await executions('safe-whoami', key)).toBe(0);
        const logged = errors.mock.calls.filter((call) =>
          String(call[0]).includes('SafeDefaultsController.whoami'),
        );
        expect(logged).toHaveLength(1);
        expect(String(logged[0][0])).toMatch(/scope option/);
      } finally {
        errors.mockRestore();
      }
    });

    it('lets requests without a user share the anonymous scope', async () => {
      const key = newKey('anonymous');
      const first = await app.http().post('/safe/whoami').set('Idempotency-Key', key).send({});
      const second = await app.http().post('/safe/whoami').set('Idempotency-Key', key).send({});
      expect(first.status).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(await executions('safe-whoami', key)).toBe(1);
    });
  });

  describe('a request refused before its handler starts does not use up its key', () => {
    /** Invalid, then corrected with the same key (runs), then retried (replays). */
    const expectKeyKeptThroughRefusal = async (
      target: () => TestApp,
      path: string,
      route: string,
      correctedPath: string = path,
    ) => {
      const key = newKey(route);
      const invalid = await target().http().post(path).set('Idempotency-Key', key).send(INVALID);
      expect(invalid.status).toBe(400);
      // Answered as the pipe answers, not as a stored response.
      expect(invalid.headers['content-type']).toMatch(/^application\/json/);
      expect(invalid.headers['idempotent-replayed']).toBeUndefined();
      expect(await records(key)).toBe(0);
      expect(await executions(route, key)).toBe(0);

      const corrected = await target()
        .http()
        .post(correctedPath)
        .set('Idempotency-Key', key)
        .send(VALID);
      expect(corrected.status).toBe(201);
      expect(corrected.headers['idempotent-replayed']).toBeUndefined();
      const retry = await target()
        .http()
        .post(correctedPath)
        .set('Idempotency-Key', key)
        .send(VALID);
      expect(retry.status).toBe(201);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.text).toBe(corrected.text);
      expect(await executions(route, key)).toBe(1);
      return key;
    };

    it('a ValidationPipe 400 on a body parameter (lease mode)', async () => {
      const key = await expectKeyKeptThroughRefusal(() => app, '/safe/items', 'safe-create');
      const outcomes = events.filter((e) => e.keyHash === hashOf(key)).map((e) => e.outcome);
      expect(outcomes).toEqual(['claimed', 'not-started', 'claimed', 'completed', 'replayed']);
    });

    it('a ValidationPipe 400 in transactional mode', async () => {
      await expectKeyKeptThroughRefusal(() => app, '/safe/tx-items', 'safe-tx');
    });

    it('a ParseIntPipe 400 on the path, with a method-level ValidationPipe', async () => {
      const key = newKey('safe-update');
      const badId = await app
        .http()
        .post('/safe/items/abc')
        .set('Idempotency-Key', key)
        .send(VALID);
      expect(badId.status).toBe(400);
      expect(await records(key)).toBe(0);
      // The corrected path is another fingerprint: it runs instead of getting 422.
      const corrected = await app
        .http()
        .post('/safe/items/7')
        .set('Idempotency-Key', key)
        .send(VALID);
      expect(corrected.status).toBe(201);
      expect(corrected.body.id).toBe(7);
      expect(await executions('safe-update', key)).toBe(1);
      await expectKeyKeptThroughRefusal(() => app, '/safe/items/8', 'safe-update');
    });

    it('but not a refusal by an interceptor inside this one: nothing shows the handler did not run', async () => {
      // Only Nest's own mark on the request proves that the handler never ran; an inner
      // interceptor's 4xx is taken as the route's answer and stored, as any 4xx the handler throws.
      const key = newKey('safe-inner');
      const refused = await app
        .http()
        .post('/safe/inner')
        .set('Idempotency-Key', key)
        .set('X-Refuse', 'yes')
        .send({});
      expect(refused.status).toBe(413);
      const retry = await app.http().post('/safe/inner').set('Idempotency-Key', key).send({});
      expect(retry.status).toBe(413);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(await executions('safe-inner', key)).toBe(0);
    });

    it('under the global interceptor, on a route covered by autoMethods', async () => {
      await expectKeyKeptThroughRefusal(() => globalApp, '/auto-safe', 'auto-safe');
    });

    it('under the global interceptor, on a decorated route', async () => {
      await expectKeyKeptThroughRefusal(() => globalApp, '/safe/items', 'safe-create');
    });

    /** A handler that ran, then answered 400 itself: stored, replayed, run once. */
    const expectHandlerRefusalStored = async (
      target: () => TestApp,
      path: string,
      route: string,
      status = 400,
    ) => {
      const key = newKey(route);
      const first = await target().http().post(path).set('Idempotency-Key', key).send(VALID);
      const retry = await target().http().post(path).set('Idempotency-Key', key).send(VALID);
      expect(first.status).toBe(status);
      expect(retry.status).toBe(status);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.text).toBe(first.text);
      expect(await executions(route, key)).toBe(1);
    };

    it('while a client error thrown by the handler itself stays stored', async () => {
      await expectHandlerRefusalStored(() => app, '/safe/refused', 'safe-refused');
    });

    it('in transactional mode too, with its writes', async () => {
      await expectHandlerRefusalStored(() => app, '/safe/tx-refused', 'safe-tx-refused');
    });

    it('under the global interceptor too', async () => {
      await expectHandlerRefusalStored(() => globalApp, '/auto-safe/refused', 'auto-safe-refused');
    });

    it('even when an interceptor inside this one runs the handler outside its async context', async () => {
      await expectHandlerRefusalStored(() => app, '/safe/queued', 'safe-queued', 402);
      await expectHandlerRefusalStored(() => globalApp, '/safe/queued', 'safe-queued', 402);
    });
  });

  describe('Retry-After of a request in flight', () => {
    const slow = (key: string, delayMs: number) =>
      app
        .http()
        .post('/safe/slow')
        .set('Idempotency-Key', key)
        .set('X-Delay-Ms', String(delayMs))
        .send({});

    it("estimates from the route's recent executions, not from the 60 s lease", async () => {
      // History: the route takes about 2.5 s.
      await Promise.all([slow(newKey('history'), 2500), slow(newKey('history'), 2500)]);
      const key = newKey('in-flight');
      const first = slow(key, 2500).then((response) => response);
      await waitFor(async () => (await executions('safe-slow', key)) === 1);
      const duplicate = await slow(key, 2500);
      expect(duplicate.status).toBe(409);
      expect(duplicate.headers['content-type']).toMatch(PROBLEM);
      const seconds = Number(duplicate.headers['retry-after']);
      // 2.5 s less what the first has run already, rounded up; never the ~60 s left on the lease.
      expect(seconds).toBeGreaterThanOrEqual(2);
      expect(seconds).toBeLessThanOrEqual(3);
      expect(duplicate.body.detail).toContain(`Retry in ${seconds} s`);
      expect((await first).status).toBe(201);
    });
  });

  describe('outcome events', () => {
    it('name the route template and the handler, with durations, and tell replays apart', async () => {
      const key = newKey('events');
      const first = await app.http().post('/safe/items/42').set('Idempotency-Key', key).send(VALID);
      const replay = await app
        .http()
        .post('/safe/items/42')
        .set('Idempotency-Key', key)
        .send(VALID);
      expect(first.status).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      const mine = events.filter((e) => e.path === '/safe/items/42' && e.keyHash !== undefined);
      const completed = mine.find((e) => e.outcome === 'completed');
      const replayed = mine.find((e) => e.outcome === 'replayed');
      expect(completed).toMatchObject({
        route: 'POST /safe/items/:id',
        controller: 'SafeDefaultsController',
        handler: 'update',
        method: 'POST',
        status: 201,
        replayed: false,
      });
      expect(completed!.handlerDurationMs).toBeGreaterThanOrEqual(0);
      expect(completed!.claimDurationMs).toBeGreaterThanOrEqual(0);
      expect(replayed).toMatchObject({
        route: 'POST /safe/items/:id',
        replayed: true,
        status: 201,
      });
      expect(replayed!.claimDurationMs).toBeGreaterThanOrEqual(0);
      expect(replayed!.handlerDurationMs).toBeUndefined();
    });

    it('are emitted for a missing and an invalid key too', async () => {
      const before = events.length;
      expect((await app.http().post('/safe/items/1').send(VALID)).status).toBe(400);
      expect(
        (await app.http().post('/safe/items/2').set('Idempotency-Key', 'k'.repeat(256)).send(VALID))
          .status,
      ).toBe(400);
      const added = events.slice(before);
      expect(added.map((e) => e.outcome)).toEqual(['key-missing', 'key-invalid']);
      for (const event of added) {
        expect(event).toMatchObject({
          route: 'POST /safe/items/:id',
          controller: 'SafeDefaultsController',
          handler: 'update',
          status: 400,
          replayed: false,
        });
        expect(event.keyHash).toBeUndefined();
        expect(event.scope).toBeUndefined();
      }
    });

    it('report a refusal by a pipe as not-started, with the global interceptor too', async () => {
      const key = newKey('events-global');
      await globalApp.http().post('/auto-safe').set('Idempotency-Key', key).send(INVALID);
      const refusal = globalEvents.find(
        (e) => e.keyHash === hashOf(key) && e.outcome === 'not-started',
      );
      expect(refusal).toMatchObject({
        route: 'POST /auto-safe',
        controller: 'AutoSafeController',
        handler: 'create',
        status: 400,
        replayed: false,
      });
    });
  });
});

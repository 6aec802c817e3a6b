import { randomUUID } from 'node:crypto';
import { IdempotencyStore } from '../../lib';
import { AppModule } from '../../sample-app/app.module';
import { readConfig } from '../../sample-app/config';
import { describeWithRedis, type RedisServer, startRedisServer } from '../utils/redis-servers';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * The sample app's administrators' endpoints (/admin/idempotency-keys), over HTTP: who may call
 * them, and what looking up, releasing, deleting and listing keys does to the next request.
 */

const TOKEN = 'admin-secret';
const PAYMENT = { amount: 500, currency: 'EUR' };

describe.each(ADAPTERS)('sample app: operating keys (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;
  let closed: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    const config = { ...readConfig({ ADMIN_TOKEN: TOKEN }), databaseUrl: db.url };
    app = await createTestApp(adapter, AppModule.register(config));
    closed = await createTestApp(
      adapter,
      AppModule.register({ ...readConfig({}), databaseUrl: db.url }),
    );
  });

  afterAll(async () => {
    await app?.close();
    await closed?.close();
    await db?.drop();
  });

  const pay = (key: string, client: string) =>
    app
      .http()
      .post('/payments')
      .set('Idempotency-Key', key)
      .set('Authorization', `Bearer ${client}`)
      .send(PAYMENT);
  const admin = (method: 'get' | 'post' | 'delete', path: string, query: Record<string, string>) =>
    app.http()[method](`/admin/idempotency-keys${path}`).query(query).set('X-Admin-Token', TOKEN);
  const payments = async () =>
    Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM payments'))[0].n);

  it('answers 403 without ADMIN_TOKEN, to a wrong token, and to a demo client', async () => {
    const disabled = await closed
      .http()
      .get('/admin/idempotency-keys')
      .query({ key: 'k' })
      .set('X-Admin-Token', TOKEN);
    expect(disabled.status).toBe(403);
    expect(disabled.body).toMatchObject({ error: 'admin_disabled' });
    for (const request of [
      app.http().get('/admin/idempotency-keys').query({ key: 'k' }).set('X-Admin-Token', 'guess'),
      app
        .http()
        .get('/admin/idempotency-keys')
        .query({ key: 'k' })
        .set('Authorization', `Bearer ${TOKEN}`),
      app.http().post('/admin/idempotency-keys/release').query({ key: 'k' }),
      app.http().delete('/admin/idempotency-keys').query({ key: 'k' }),
    ]) {
      const refused = await request;
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ error: 'not_admin' });
    }
  });

  it("shows a client's key, its response on request, and nothing to another scope", async () => {
    const key = `shown-${randomUUID()}`;
    const first = await pay(key, 'alice');
    expect(first.status).toBe(201);
    const found = await admin('get', '', { scope: 'alice', key });
    expect(found.status).toBe(200);
    expect(found.body).toMatchObject({
      scope: 'alice',
      key,
      state: 'completed',
      status: 201,
      leaseEndsAt: null,
    });
    expect(found.body.response).toBeUndefined();
    expect(Date.parse(found.body.expiresAt)).toBeGreaterThan(Date.now());
    const whole = await admin('get', '', { scope: 'alice', key, response: 'true' });
    expect(JSON.parse(Buffer.from(whole.body.response.bodyBase64, 'base64').toString())).toEqual(
      first.body,
    );
    expect(whole.body.response.headers.location).toBe(first.headers.location);
    const elsewhere = await admin('get', '', { scope: 'bob', key });
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body).toEqual({ error: 'key_not_found' });
  });

  it('lists a stuck key, and releases it so that the next request runs', async () => {
    const key = `stuck-${randomUUID()}`;
    // A holder that died mid-request: claimed, never finished, its lease still long.
    const claimed = await app.app.get(IdempotencyStore).claim({
      scope: 'carol',
      key,
      fingerprint: null,
      lockTimeoutMs: 600_000,
      ttlMs: 600_000,
    });
    expect(claimed.kind).toBe('claimed');
    expect((await pay(key, 'carol')).status).toBe(409);
    const listed = await admin('get', '/in-flight', { scope: 'carol', olderThanMs: '0' });
    expect(listed.status).toBe(200);
    expect(listed.body.keys.map((found: { key: string }) => found.key)).toEqual([key]);
    expect(
      (await admin('get', '/in-flight', { scope: 'carol', olderThanMs: '600000' })).body,
    ).toEqual({ keys: [] });
    expect((await admin('get', '/in-flight', { scope: 'dave' })).body).toEqual({ keys: [] });
    expect((await admin('post', '/release', { scope: 'dave', key })).body).toEqual({
      released: false,
    });
    const released = await admin('post', '/release', { scope: 'carol', key });
    expect(released.status).toBe(200);
    expect(released.body).toEqual({ released: true });
    const before = await payments();
    expect((await pay(key, 'carol')).status).toBe(201);
    expect(await payments()).toBe(before + 1);
    expect((await admin('post', '/release', { scope: 'carol', key })).body).toEqual({
      released: false,
    });
  });

  it('deletes a finished key: its next request runs again', async () => {
    const key = `deleted-${randomUUID()}`;
    expect((await pay(key, 'erin')).status).toBe(201);
    const before = await payments();
    expect((await pay(key, 'erin')).headers['idempotent-replayed']).toBe('true');
    expect((await admin('delete', '', { scope: 'frank', key })).body).toEqual({ deleted: false });
    expect((await admin('delete', '', { scope: 'erin', key })).body).toEqual({ deleted: true });
    expect((await pay(key, 'erin')).headers['idempotent-replayed']).toBeUndefined();
    expect(await payments()).toBe(before + 1);
  });

  it('releases only the claim it names with claimId', async () => {
    const key = `named-${randomUUID()}`;
    const store = app.app.get(IdempotencyStore);
    const claim = () =>
      store.claim({ scope: 'gina', key, fingerprint: null, lockTimeoutMs: 1, ttlMs: 600_000 });
    expect((await claim()).kind).toBe('claimed');
    const first = (await admin('get', '', { scope: 'gina', key })).body;
    await new Promise((resolve) => setTimeout(resolve, 20));
    // A retry took the ended lease over: the claim the operator saw is gone.
    expect((await claim()).kind).toBe('claimed');
    const second = (await admin('get', '', { scope: 'gina', key })).body;
    expect(second.claimId).not.toBe(first.claimId);
    const stale = await admin('post', '/release', { scope: 'gina', key, claimId: first.claimId });
    expect(stale.body).toEqual({ released: false });
    const current = await admin('post', '/release', {
      scope: 'gina',
      key,
      claimId: second.claimId,
    });
    expect(current.body).toEqual({ released: true });
  });

  it('answers 400 to a key no request could carry, and to a bad listing', async () => {
    for (const [path, query] of [
      ['', {}],
      ['', { key: 'x'.repeat(256) }],
      ['/in-flight', { limit: '0' }],
      ['/in-flight', { olderThanMs: 'soon' }],
      ['/in-flight', { olderThanMs: '1e15' }],
    ] as const) {
      const refused = await admin('get', path, query);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ error: 'invalid_argument' });
    }
    // A parameter given twice is no key or scope at all, on either platform's query parser.
    for (const query of ['scope=alice&scope=bob&key=k', 'scope=alice&key=a&key=b']) {
      const refused = await app
        .http()
        .get(`/admin/idempotency-keys?${query}`)
        .set('X-Admin-Token', TOKEN);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ error: 'invalid_argument' });
    }
  });
});

const describeRedis = describeWithRedis();

describeRedis('sample app: operating keys on Redis', () => {
  let db: TestDatabase;
  let server: RedisServer;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startRedisServer();
    const config = {
      ...readConfig({
        ADMIN_TOKEN: TOKEN,
        IDEMPOTENCY_STORE: 'redis',
        REDIS_URL: `redis://127.0.0.1:${server.port}`,
      }),
      databaseUrl: db.url,
    };
    app = await createTestApp('express', AppModule.register(config));
  });

  afterAll(async () => {
    await app?.close();
    await server?.stop();
    await db?.drop();
  });

  it('finds and deletes a key in Redis, and says it cannot list', async () => {
    const key = `redis-${randomUUID()}`;
    const paid = await app
      .http()
      .post('/payments')
      .set('Idempotency-Key', key)
      .set('Authorization', 'Bearer alice')
      .send(PAYMENT);
    expect(paid.status).toBe(201);
    const found = await app
      .http()
      .get('/admin/idempotency-keys')
      .query({ scope: 'alice', key })
      .set('X-Admin-Token', TOKEN);
    expect(found.body).toMatchObject({ state: 'completed', status: 201, claimedAt: null });
    const listed = await app
      .http()
      .get('/admin/idempotency-keys/in-flight')
      .query({ scope: 'alice' })
      .set('X-Admin-Token', TOKEN);
    expect(listed.status).toBe(501);
    expect(listed.body).toMatchObject({ error: 'listing_not_supported' });
    const deleted = await app
      .http()
      .delete('/admin/idempotency-keys')
      .query({ scope: 'alice', key })
      .set('X-Admin-Token', TOKEN);
    expect(deleted.body).toEqual({ deleted: true });
  });
});

import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

const PROBLEM = /^application\/problem\+json/;

describe.each(ADAPTERS)('core semantics (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(adapter, FixtureAppModule.register({ databaseUrl: db.url }));
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const executions = async (route: string, key: string) =>
    Number(
      (
        await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM executions WHERE route = $1 AND idem_key = $2',
          [route, key],
        )
      )[0].n,
    );
  const records = async (key: string) =>
    Number(
      (
        await db.query<{ n: string }>(
          'SELECT count(*) AS n FROM idempotency_records WHERE key = $1',
          [key],
        )
      )[0].n,
    );

  it('runs the first request and replays it byte for byte, with its headers', async () => {
    const key = `replay-${adapter}`;
    const body = { item: 'book', qty: 2 };
    const first = await app.http().post('/orders').set('Idempotency-Key', key).send(body);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const second = await app.http().post('/orders').set('Idempotency-Key', key).send(body);
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.headers['content-type']).toMatch(/^application\/json/);
    expect(second.headers.location).toBe(first.headers.location);
    expect(second.headers['x-order-version']).toBe('7');
    // Credentials and cookies are never stored, even when configured.
    expect(first.headers['set-cookie']).toBeDefined();
    expect(second.headers['set-cookie']).toBeUndefined();
    expect(second.headers.authorization).toBeUndefined();
    expect(await executions('create', key)).toBe(1);
  });

  it('stores the body as the exact bytes sent (key order and unicode kept)', async () => {
    const key = `bytes-${adapter}`;
    const first = await app.http().post('/orders').set('Idempotency-Key', key).send({ b: 1, a: 2 });
    const stored = await db.query<{ body: Buffer }>(
      'SELECT response_body AS body FROM idempotency_records WHERE key = $1',
      [key],
    );
    expect(stored[0].body.toString('utf8')).toBe(first.text);
    expect(first.text.indexOf('"zeta"')).toBeLessThan(first.text.indexOf('"alpha"'));
    expect(first.text).toContain('é ✓');
  });

  it('treats the quoted-string form of a key as the same key', async () => {
    const key = `quoted-${adapter}`;
    const first = await app.http().post('/orders').set('Idempotency-Key', key).send({ q: 1 });
    const second = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', `"${key}"`)
      .send({ q: 1 });
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers['idempotent-replayed']).toBe('true');
  });

  it('fingerprints the body as canonical JSON: key order does not matter', async () => {
    const key = `canonical-${adapter}`;
    const first = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', key)
      .send({ a: 1, b: { c: 2, d: 3 } });
    const second = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', key)
      .send({ b: { d: 3, c: 2 }, a: 1 });
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['control character', 'a\tb'],
    ['malformed quoted string', '"abc'],
  ])('answers 400 problem+json for a %s key, without running or storing', async (_, key) => {
    const req = app.http().post('/orders').send({ x: 1 });
    if (key !== undefined) {
      req.set('Idempotency-Key', key);
    }
    const response = await req;
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(PROBLEM);
    expect(response.body).toMatchObject({
      status: 400,
      type: expect.stringMatching(/^urn:nestjs-idempotency:problem:key-(missing|invalid)$/),
      title: expect.any(String),
      detail: expect.any(String),
    });
    const total = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM executions WHERE route = 'create' AND idem_key IS NOT DISTINCT FROM $1",
      [key ?? null],
    );
    expect(Number(total[0].n)).toBe(0);
  });

  it('accepts a 255-character key and rejects two key headers', async () => {
    const long = 'k'.repeat(254) + adapter[0];
    expect((await app.http().post('/orders').set('Idempotency-Key', long).send({})).status).toBe(
      201,
    );
    // supertest folds repeated headers into one, so the request is written by hand.
    const twice = await rawRequest(
      await app.app.getUrl(),
      'POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Idempotency-Key: one\r\nIdempotency-Key: two\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expect(twice).toMatch(/^HTTP\/1\.1 400 /);
    expect(twice).toMatch(/content-type: application\/problem\+json/i);
    expect(await records('one')).toBe(0);
  });

  it('answers 400 problem+json for a body too deeply nested to fingerprint, without running', async () => {
    const key = `deep-${adapter}`;
    const depth = 5000;
    const response = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', key)
      .set('Content-Type', 'application/json')
      .send('['.repeat(depth) + ']'.repeat(depth));
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(PROBLEM);
    expect(response.body.type).toBe('urn:nestjs-idempotency:problem:request-not-fingerprintable');
    expect(await executions('create', key)).toBe(0);
    expect(await records(key)).toBe(0);
  });

  it('answers 422 for a key reused with a different body, and keeps the original', async () => {
    const key = `mismatch-${adapter}`;
    const first = await app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'a' });
    const other = await app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'b' });
    expect(other.status).toBe(422);
    expect(other.headers['content-type']).toMatch(PROBLEM);
    expect(other.body.type).toBe('urn:nestjs-idempotency:problem:key-mismatch');
    const again = await app.http().post('/orders').set('Idempotency-Key', key).send({ item: 'a' });
    expect(again.text).toBe(first.text);
    expect(await executions('create', key)).toBe(1);
  });

  it('answers 422 for a key reused on another path', async () => {
    const key = `path-${adapter}`;
    await app.http().post('/orders/status/201').set('Idempotency-Key', key).send({});
    const other = await app.http().post('/orders/status/202').set('Idempotency-Key', key).send({});
    expect(other.status).toBe(422);
  });

  it('answers 409 with Retry-After while the first request is in flight', async () => {
    const key = `inflight-${adapter}`;
    const first = app.http().post('/orders?delayMs=1500').set('Idempotency-Key', key).send({});
    const firstDone = first.then((r) => r);
    await waitFor(async () => (await executions('create', key)) === 1);
    const second = await app
      .http()
      .post('/orders?delayMs=1500')
      .set('Idempotency-Key', key)
      .send({});
    expect(second.status).toBe(409);
    expect(second.headers['content-type']).toMatch(PROBLEM);
    const retryAfter = Number(second.headers['retry-after']);
    // Retry-After estimates when the result is ready from the route's recent executions (fast
    // ones in this file), at least 1 s: not the 60 s left on the lease.
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(second.body.detail).toContain(`Retry in ${retryAfter} s`);
    expect((await firstDone).status).toBe(201);
    const third = await app
      .http()
      .post('/orders?delayMs=1500')
      .set('Idempotency-Key', key)
      .send({});
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(await executions('create', key)).toBe(1);
  });

  it('runs the handler exactly once under 40 parallel requests with one key', async () => {
    const key = `burst-${adapter}`;
    const responses = await Promise.all(
      Array.from({ length: 40 }, () =>
        app.http().post('/orders?delayMs=50').set('Idempotency-Key', key).send({ burst: true }),
      ),
    );
    expect(await executions('create', key)).toBe(1);
    const winners = responses.filter((r) => r.status === 201);
    expect(winners.length).toBeGreaterThanOrEqual(1);
    expect(new Set(winners.map((r) => r.text)).size).toBe(1);
    for (const r of responses) {
      expect([201, 409]).toContain(r.status);
    }
  });

  it('runs each of many keys exactly once under parallel duplicates', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `many-${adapter}-${i}`);
    await Promise.all(
      keys.flatMap((key) =>
        Array.from({ length: 5 }, () =>
          app.http().post('/orders').set('Idempotency-Key', key).send({ key }),
        ),
      ),
    );
    const rows = await db.query<{ idem_key: string; n: string }>(
      'SELECT idem_key, count(*) AS n FROM executions WHERE idem_key LIKE $1 GROUP BY idem_key',
      [`many-${adapter}-%`],
    );
    expect(rows).toHaveLength(keys.length);
    expect(rows.every((row) => Number(row.n) === 1)).toBe(true);
  });

  it('stores and replays a 4xx', async () => {
    const key = `4xx-${adapter}`;
    const first = await app.http().post('/orders/status/402').set('Idempotency-Key', key).send({});
    expect(first.status).toBe(402);
    const second = await app.http().post('/orders/status/402').set('Idempotency-Key', key).send({});
    expect(second.status).toBe(402);
    expect(second.text).toBe(first.text);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(await executions('status-402', key)).toBe(1);
  });

  it.each([409, 429, 500, 503])(
    'releases the key after a %i so a retry runs again',
    async (code) => {
      const key = `released-${code}-${adapter}`;
      const first = await app
        .http()
        .post(`/orders/status/${code}`)
        .set('Idempotency-Key', key)
        .send({});
      expect(first.status).toBe(code);
      const second = await app
        .http()
        .post(`/orders/status/${code}`)
        .set('Idempotency-Key', key)
        .send({});
      expect(second.status).toBe(code);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
      expect(await executions(`status-${code}`, key)).toBe(2);
      expect(await records(key)).toBe(0);
    },
  );

  it('releases the key after an unhandled error', async () => {
    const key = `crash-${adapter}`;
    expect(
      (await app.http().post('/orders/crash').set('Idempotency-Key', key).send({})).status,
    ).toBe(500);
    expect(
      (await app.http().post('/orders/crash').set('Idempotency-Key', key).send({})).status,
    ).toBe(500);
    expect(await executions('crash', key)).toBe(2);
  });

  it('keeps the keys of different clients apart', async () => {
    const key = `shared-${adapter}`;
    const alice = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', key)
      .set('X-Client', 'alice')
      .send({});
    const bob = await app
      .http()
      .post('/orders')
      .set('Idempotency-Key', key)
      .set('X-Client', 'bob')
      .send({});
    expect(alice.status).toBe(201);
    expect(bob.status).toBe(201);
    expect(bob.headers['idempotent-replayed']).toBeUndefined();
    expect(bob.body.orderId).not.toBe(alice.body.orderId);
    expect(await executions('create', key)).toBe(2);
  });

  it.each([
    ['@Res() without passthrough', '/orders/raw', 'raw'],
    ['a StreamableFile', '/orders/file', 'file'],
    ['a body over maxResponseBytes', '/orders/big', 'big'],
  ])('runs %s once and answers retries with 410', async (_, path, route) => {
    const key = `unreplayable-${route}-${adapter}`;
    const first = await app.http().post(path).set('Idempotency-Key', key).send({});
    expect(first.status).toBeLessThan(300);
    const second = await app.http().post(path).set('Idempotency-Key', key).send({});
    expect(second.status).toBe(410);
    expect(second.headers['content-type']).toMatch(PROBLEM);
    expect(second.body.type).toBe('urn:nestjs-idempotency:problem:response-not-replayable');
    if (route !== 'raw') {
      // A handler that sends its own response may be retried before its status is recorded.
      expect(second.body.originalStatus).toBe(first.status);
    }
    expect(await executions(route, key)).toBe(1);
    const state = await db.query<{ state: string; body: Buffer | null }>(
      'SELECT state, response_body AS body FROM idempotency_records WHERE key = $1',
      [key],
    );
    expect(state).toEqual([{ state: 'not_replayable', body: null }]);
  });

  it('replays an empty 204 and a text body', async () => {
    const key = `empty-${adapter}`;
    const first = await app.http().post('/orders/empty').set('Idempotency-Key', key).send({});
    const second = await app.http().post('/orders/empty').set('Idempotency-Key', key).send({});
    expect([first.status, second.status]).toEqual([204, 204]);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(await executions('empty', key)).toBe(1);

    const textKey = `text-${adapter}`;
    const a = await app.http().post('/orders/text').set('Idempotency-Key', textKey).send({});
    const b = await app.http().post('/orders/text').set('Idempotency-Key', textKey).send({});
    expect(b.text).toBe(a.text);
    expect(b.headers['content-type']).toBe(a.headers['content-type']);
    expect(await executions('text', textKey)).toBe(1);
  });

  it('runs keyless requests unprotected on a route that does not require a key', async () => {
    expect((await app.http().post('/orders/optional').send({})).status).toBe(201);
    expect((await app.http().post('/orders/optional').send({})).status).toBe(201);
    const key = `optional-${adapter}`;
    await app.http().post('/orders/optional').set('Idempotency-Key', key).send({});
    const replay = await app.http().post('/orders/optional').set('Idempotency-Key', key).send({});
    expect(replay.headers['idempotent-replayed']).toBe('true');
  });

  it('leaves excluded fields out of the fingerprint, and can turn it off', async () => {
    const key = `volatile-${adapter}`;
    await app
      .http()
      .post('/orders/volatile')
      .set('Idempotency-Key', key)
      .send({ a: 1, sentAt: 1, meta: { nonce: 1 } });
    const replay = await app
      .http()
      .post('/orders/volatile')
      .set('Idempotency-Key', key)
      .send({ a: 1, sentAt: 2, meta: { nonce: 2 } });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    const changed = await app
      .http()
      .post('/orders/volatile')
      .set('Idempotency-Key', key)
      .send({ a: 2 });
    expect(changed.status).toBe(422);

    const unchecked = `unchecked-${adapter}`;
    await app.http().post('/orders/unchecked').set('Idempotency-Key', unchecked).send({ a: 1 });
    const any = await app
      .http()
      .post('/orders/unchecked')
      .set('Idempotency-Key', unchecked)
      .send({ a: 2 });
    expect(any.headers['idempotent-replayed']).toBe('true');
  });
});

async function rawRequest(baseUrl: string, text: string): Promise<string> {
  const { connect } = await import('node:net');
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(text));
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

import type { IdempotencyOutcomeEvent } from '../../lib';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

describe.each(ADAPTERS)('lease fencing (%s)', (adapter) => {
  let db: TestDatabase;
  let app: TestApp;
  const events: IdempotencyOutcomeEvent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(
      adapter,
      FixtureAppModule.register({
        databaseUrl: db.url,
        idempotency: { onOutcome: (event) => events.push(event) },
      }),
    );
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('never lets a slow execution whose lease was taken over overwrite the newer result', async () => {
    const key = `fenced-${adapter}`;
    const send = (delayMs: number) =>
      app
        .http()
        .post('/orders/short-lease')
        .set('Idempotency-Key', key)
        .set('X-Delay-Ms', String(delayMs))
        .send({ same: 'request' });

    // The first execution holds its 1 s lease for 3 s.
    const slow = send(3000).then((response) => response);
    await waitFor(async () => (await executionIds(db, key)).length === 1);
    // Before the lease ends the key is busy...
    expect((await send(0)).status).toBe(409);
    // ...after it, a retry takes the key over, runs, and its answer is stored.
    await waitFor(async () => (await leaseOver(db, key)) === true, 10_000);
    const takeover = await send(0);
    expect(takeover.status).toBe(201);

    const late = await slow;
    expect(late.status).toBe(201);
    expect(late.body.execution).not.toBe(takeover.body.execution);

    // The stored response is the takeover's: the late finisher's completion was fenced off.
    const replay = await send(0);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(takeover.text);
    expect(await executionIds(db, key)).toHaveLength(2);
    expect(
      events.filter(
        (event) => event.outcome === 'lease-lost' && event.path === '/orders/short-lease',
      ),
    ).toHaveLength(1);
  }, 30_000);
});

async function executionIds(db: TestDatabase, key: string): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    "SELECT id FROM executions WHERE route = 'short-lease' AND idem_key = $1",
    [key],
  );
  return rows.map((row) => row.id);
}

async function leaseOver(db: TestDatabase, key: string): Promise<boolean> {
  const rows = await db.query<{ over: boolean }>(
    'SELECT locked_until <= now() AS over FROM idempotency_records WHERE key = $1',
    [key],
  );
  return rows[0]?.over === true;
}

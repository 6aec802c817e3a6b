import { createHash } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import type { FixtureIdempotencyOptions } from './fixtures/fixture-idempotency';
import { FixtureAppModule } from './fixtures/fixture-app.module';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/** The debug lines of the `Idempotency` context, as the application's logger receives them. */
class DebugLines implements LoggerService {
  readonly lines: string[] = [];
  debug(message: unknown, context?: string): void {
    if (context === 'Idempotency') {
      this.lines.push(String(message));
    }
  }
  log(): void {}
  error(): void {}
  warn(): void {}
  verbose(): void {}
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe.each(ADAPTERS)('outcome logging (%s)', (adapter) => {
  let db: TestDatabase;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await db?.drop();
  });

  const start = async (idempotency: FixtureIdempotencyOptions) => {
    const app = await createTestApp(
      adapter,
      FixtureAppModule.register({ databaseUrl: db.url, idempotency }),
    );
    apps.push(app);
    const logger = new DebugLines();
    app.app.useLogger(logger);
    return { app, logger };
  };

  it('logs each outcome at debug level with the key hashed, when asked to', async () => {
    const { app, logger } = await start({ logOutcomes: true });
    const key = `logged-${adapter}`;
    await app.http().post('/orders').set('Idempotency-Key', key).send({ a: 1 });
    await app.http().post('/orders').set('Idempotency-Key', key).send({ a: 1 });
    await app.http().post('/orders').set('Idempotency-Key', key).send({ a: 2 });
    await app.http().post('/orders').set('Idempotency-Key', '"unterminated').send({});
    expect(logger.lines).toEqual([
      `claimed: POST /orders, key #${sha256(key)}`,
      `completed: POST /orders, key #${sha256(key)}, status 201`,
      `replayed: POST /orders, key #${sha256(key)}, status 201`,
      `mismatch: POST /orders, key #${sha256(key)}, status 422`,
      'key-invalid: POST /orders, no valid key, status 400',
    ]);
    expect(logger.lines.join('\n')).not.toContain(key);
  });

  it('writes the raw key with logRawKeys', async () => {
    const { app, logger } = await start({ logOutcomes: true, logRawKeys: true });
    const key = `raw-${adapter}`;
    await app.http().post('/orders').set('Idempotency-Key', key).send({ a: 1 });
    expect(logger.lines[0]).toBe(`claimed: POST /orders, key "${key}"`);
  });

  it('logs nothing by default', async () => {
    const { app, logger } = await start({});
    await app.http().post('/orders').set('Idempotency-Key', `quiet-${adapter}`).send({ a: 1 });
    await app.http().post('/orders').send({ a: 1 });
    expect(logger.lines).toEqual([]);
  });
});

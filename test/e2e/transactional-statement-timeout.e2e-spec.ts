import { Controller, type DynamicModule, Headers, Module, Post } from '@nestjs/common';
import pg from 'pg';
import type { Response } from 'supertest';
import {
  IdempotencyModule,
  type IdempotencyModuleOptions,
  type IdempotencyOutcomeEvent,
  Idempotent,
  type ProblemDetails,
} from '../../lib';
import { IdempotencyTransaction } from '../../lib/postgres';
import { destroySocket } from '../../lib/postgres/driver/pg-internals';
import { onPostgres } from './fixtures/fixture-idempotency';
import { fixtureDatabase } from './fixtures/fixture-database.module';
import { TcpProxy } from '../utils/tcp-proxy';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';
import { waitFor } from '../utils/wait-for';

/*
 * A transactional handler's own statement that PostgreSQL does not answer: on a frozen server
 * (a stalled proxy) the client-side bound closes the connection and the client gets 503; on a
 * live server a lock wait is cancelled by the statement_timeout the module sets. Either way the
 * request answers within its bound, nothing of it commits, and a retry runs exactly once.
 */

const STORE_TIMEOUT_MS = 2000;
const STATEMENT_TIMEOUT_MS = 1000;
/** How PostgreSQL shows that statement_timeout. */
const STATEMENT_TIMEOUT_SHOWN = '1s';
/** When the client-side bound closes the connection of an unanswered statement. */
const UNANSWERED_MS = STATEMENT_TIMEOUT_MS + STORE_TIMEOUT_MS;
/** Room for a busy, shared 2-core machine; far below the outage the tests stage. */
const SLACK_MS = 3000;
/** Today's unbounded wait would last until the test ends the outage, after this. */
const OUTAGE_MS = 15_000;
const TEST_TIMEOUT_MS = 60_000;

const STORE_UNAVAILABLE = 'urn:nestjs-idempotency:problem:store-unavailable';
const CREATE_COUNTER_SQL =
  'CREATE TABLE IF NOT EXISTS counters (id int PRIMARY KEY, n int NOT NULL); INSERT INTO counters VALUES (1, 0) ON CONFLICT DO NOTHING';

/** Lets a test hold a handler between its two statements (keyed by idempotency key). */
class Gates {
  private readonly gates = new Map<string, { reached: () => void; opened: Promise<void> }>();

  /** Holds the next handler run of `key` after its first statement. */
  hold(key: string): { reached: Promise<void>; open: () => void } {
    let open!: () => void;
    let reached!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const hasReached = new Promise<void>((resolve) => (reached = resolve));
    this.gates.set(key, { reached, opened });
    return { reached: hasReached, open };
  }

  async pass(key: string): Promise<void> {
    const gate = this.gates.get(key);
    if (gate) {
      this.gates.delete(key);
      gate.reached();
      await gate.opened;
    }
  }
}

const gates = new Gates();

/** One transactional route: a write, an optional pause, then an update of a shared row. */
@Controller('stall')
class StallController {
  constructor(private readonly transaction: IdempotencyTransaction) {}

  @Post()
  @Idempotent({ transactional: true })
  async run(@Headers('idempotency-key') key: string) {
    const manager = this.transaction.manager;
    const [{ id }] = (await manager.query(
      "INSERT INTO executions (route, idem_key) VALUES ('stall', $1) RETURNING id",
      [key],
    )) as { id: number }[];
    await gates.pass(key);
    await manager.query('UPDATE counters SET n = n + 1 WHERE id = 1');
    const [{ statement_timeout: statementTimeout }] = (await manager.query(
      'SHOW statement_timeout',
    )) as { statement_timeout: string }[];
    return { execution: id, key, statementTimeout };
  }
}

@Module({})
class StallAppModule {
  static register(databaseUrl: string, idempotency: IdempotencyModuleOptions): DynamicModule {
    return {
      module: StallAppModule,
      imports: [
        fixtureDatabase({ databaseUrl }),
        IdempotencyModule.forRoot(onPostgres({ purgeIntervalMs: 0, ...idempotency })),
      ],
      controllers: [StallController],
    };
  }
}

describe.each(ADAPTERS)('a transactional handler whose statement hangs (%s)', (adapter) => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: TestApp;
  const events: IdempotencyOutcomeEvent[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    proxy = await TcpProxy.forUrl(db.url);
    const idempotency: IdempotencyModuleOptions = {
      storeTimeoutMs: STORE_TIMEOUT_MS,
      statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      onOutcome: (event) => events.push(event),
      logRawKeys: true,
    };
    app = await createTestApp(adapter, StallAppModule.register(proxy.via(db.url), idempotency));
    await db.query(CREATE_COUNTER_SQL);
  }, TEST_TIMEOUT_MS);

  afterEach(() => proxy.restore());

  afterAll(async () => {
    await app?.close();
    await proxy?.close();
    await db?.drop();
  }, TEST_TIMEOUT_MS);

  const send = (key: string) =>
    app
      .http()
      .post('/stall')
      .set('Idempotency-Key', key)
      .send({})
      .timeout(OUTAGE_MS + SLACK_MS)
      .then(
        (response) => response,
        (error: unknown) => {
          throw new Error(`no answer within ${OUTAGE_MS + SLACK_MS} ms: ${String(error)}`);
        },
      );
  // Counted on the database itself, not through the proxy.
  const count = async (sql: string, key: string) =>
    Number((await db.query<{ n: string }>(sql, [key]))[0].n);
  const executions = (key: string) =>
    count("SELECT count(*) AS n FROM executions WHERE route = 'stall' AND idem_key = $1", key);
  const records = (key: string) =>
    count(
      "SELECT count(*) AS n FROM idempotency_records WHERE key = $1 AND state = 'completed'",
      key,
    );
  const counter = async () =>
    (await db.query<{ n: number }>('SELECT n FROM counters WHERE id = 1'))[0].n;

  /** After the outage: the retry runs once and commits, a second retry replays it. */
  const expectRunsOnceOnRetry = async (key: string, counterBefore: number) => {
    const retry = await send(key);
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    // The module's statement_timeout is in force in the handler's transaction.
    expect(retry.body).toMatchObject({ key, statementTimeout: STATEMENT_TIMEOUT_SHOWN });
    expect(await executions(key)).toBe(1);
    expect(await records(key)).toBe(1);
    expect(await counter()).toBe(counterBefore + 1);

    const replay = await send(key);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(retry.text);
    expect(await executions(key)).toBe(1);
    expect(await counter()).toBe(counterBefore + 1);
  };
  const expectStoreUnavailable = (response: Response) => {
    expect(response.status).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['retry-after']).toBe('1');
    expect((response.body as ProblemDetails).type).toBe(STORE_UNAVAILABLE);
  };

  it(
    'on a frozen database: 503 once the statement stays unanswered past its bound, nothing commits',
    async () => {
      const key = `frozen-${adapter}-${Date.now()}`;
      const counterBefore = await counter();
      const gate = gates.hold(key);
      const answer = send(key);
      // The key is claimed and the handler has written, inside its transaction; its next
      // statement goes to a database that no longer answers.
      await gate.reached;
      proxy.stall();
      const stalledAt = Date.now();
      gate.open();
      const restore = setTimeout(() => proxy.restore(), OUTAGE_MS);
      let response: Response;
      try {
        response = await answer;
      } finally {
        clearTimeout(restore);
      }
      const elapsedMs = Date.now() - stalledAt;
      proxy.restore();

      expectStoreUnavailable(response);
      expect({ elapsedMs, bounded: elapsedMs < UNANSWERED_MS + SLACK_MS }).toEqual({
        elapsedMs: expect.any(Number),
        bounded: true,
      });
      // It was the client-side bound that answered, not a store call's timeout.
      expect(elapsedMs).toBeGreaterThanOrEqual(UNANSWERED_MS - 100);
      const reported = events.find((e) => e.key === key && e.outcome === 'store-error');
      expect(String(reported?.error)).toMatch(/left a statement .* unanswered/);
      // The closed connection took the transaction with it: the handler's write is gone.
      expect(await executions(key)).toBe(0);
      expect(await counter()).toBe(counterBefore);

      await expectRunsOnceOnRetry(key, counterBefore);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "on a live database: a lock wait ends at statementTimeoutMs (PostgreSQL's statement_timeout), nothing commits",
    async () => {
      const key = `locked-${adapter}-${Date.now()}`;
      const counterBefore = await counter();
      // Another session holds the row the handler updates.
      const holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
      let response: Response;
      let elapsedMs: number;
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT n FROM counters WHERE id = 1 FOR UPDATE');
        const release = setTimeout(() => void holder.query('ROLLBACK'), OUTAGE_MS);
        const started = Date.now();
        try {
          response = await send(key);
        } finally {
          clearTimeout(release);
        }
        elapsedMs = Date.now() - started;
        await holder.query('ROLLBACK');
      } finally {
        await holder.end();
      }

      // The handler's statement failed like any other: its error, not the module's 503.
      expect(response.status).toBe(500);
      const released = events.find((e) => e.key === key && e.outcome === 'released');
      expect((released?.error as { code?: unknown } | undefined)?.code).toBe('57014');
      expect({
        elapsedMs,
        afterStatementTimeout: elapsedMs >= STATEMENT_TIMEOUT_MS - 100,
        beforeClientBound: elapsedMs < UNANSWERED_MS,
      }).toEqual({ elapsedMs, afterStatementTimeout: true, beforeClientBound: true });
      expect(await executions(key)).toBe(0);
      expect(await counter()).toBe(counterBefore);

      await expectRunsOnceOnRetry(key, counterBefore);
    },
    TEST_TIMEOUT_MS,
  );
});

/*
 * What the client-side bound relies on in node-postgres (lib/postgres/store/statement-deadline.ts, lib/postgres/driver/pg-internals.ts):
 * destroying a client's socket fails its statement in flight at once with the given reason, and
 * the client reports it as an `error` event (on which TypeORM drops the connection). If a pg
 * upgrade changes either, these fail.
 */
describe('node-postgres: a statement in flight on a destroyed socket', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;

  beforeAll(async () => {
    db = await createTestDatabase();
    proxy = await TcpProxy.forUrl(db.url);
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await proxy?.close();
    await db?.drop();
  }, TEST_TIMEOUT_MS);

  it.each([
    ['one statement at a time', false],
    ["pg's pipeline mode", true],
  ])(
    'fails at once with the reason given, %s',
    async (_mode, pipeline) => {
      const client = new pg.Client({
        connectionString: proxy.via(db.url),
        ...({ pipeline } as object),
      });
      const errors: unknown[] = [];
      client.on('error', (error) => errors.push(error));
      await client.connect();
      try {
        await client.query('SELECT 1');
        proxy.stall();
        const hung = client.query('SELECT 2');
        const reason = new Error('deadline');
        const started = Date.now();
        destroySocket(client as unknown as pg.PoolClient, reason);
        await expect(hung).rejects.toBe(reason);
        expect(Date.now() - started).toBeLessThan(1000);
        await waitFor(async () => errors.length > 0, 1000);
        expect(errors[0]).toBe(reason);
      } finally {
        proxy.restore();
        await client.end().catch(() => undefined);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

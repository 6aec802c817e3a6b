import { waitFor } from '../utils/wait-for';
import type { Attributes } from '@opentelemetry/api';
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotencyMaintenance, IdempotencyPurger } from '../../lib';
import { IDEMPOTENCY_TELEMETRY } from '../../lib/idempotency.module-definition';
import { IdempotencyTelemetry } from '../../lib/telemetry/idempotency-telemetry';
import type { ClaimRequest, ClaimResult } from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import {
  SERVER_SPAN,
  StoreOnlyAppModule,
  TelemetryAppModule,
} from './fixtures/telemetry-app.module';
import { TestTelemetry, hasAttributes, uninstallTelemetry } from '../utils/telemetry';
import { ADAPTERS, type TestApp, createTestApp } from '../utils/test-app';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** `method route outcome` of a data point, for comparing whole sets at once. */
const label = (attributes: Attributes) =>
  `${attributes['http.request.method']} ${attributes['http.route']} ${attributes['idempotency.outcome']}`;

/** Counter values by label, of the points whose route starts with `prefix`. */
const byLabel = (points: DataPoint<number>[], prefix: string) =>
  Object.fromEntries(
    points
      .filter((point) => String(point.attributes['http.route']).startsWith(prefix))
      .map((point) => [label(point.attributes), point.value]),
  );

/** Histogram counts by label, of the points whose route starts with `prefix`. */
const countsByLabel = (points: DataPoint<Histogram>[], prefix: string) =>
  Object.fromEntries(
    points
      .filter((point) => String(point.attributes['http.route']).startsWith(prefix))
      .map((point) => [label(point.attributes), point.value.count]),
  );

const findPoint = <T>(points: DataPoint<T>[], expected: Attributes): DataPoint<T> => {
  const found = points.filter((point) => hasAttributes(point.attributes, expected));
  expect(found).toHaveLength(1);
  return found[0];
};

const idempotencySpans = (spans: ReadableSpan[], key: string) =>
  spans.filter((span) => span.attributes['idempotency.key_hash'] === sha256(key));

/** `name outcome [action]` of each span, sorted. */
const describeSpans = (spans: ReadableSpan[]) =>
  spans
    .map((span) =>
      [
        span.name,
        span.attributes['idempotency.outcome'],
        span.attributes['idempotency.record.action'],
      ]
        .filter((part) => part !== undefined)
        .join(' '),
    )
    .sort();

describe.each(ADAPTERS)('OpenTelemetry metrics and spans (%s)', (adapter) => {
  let telemetry: TestTelemetry;
  let db: TestDatabase;
  let app: TestApp;
  const keys = {
    replayed: `otel-replayed-${adapter}`,
    slow: `otel-slow-${adapter}`,
    failed: `otel-failed-${adapter}`,
    piped: `otel-piped-${adapter}`,
    raw: `otel-raw-${adapter}`,
  };
  const body = { item: 'book' };
  const order = (key: string | undefined, sent: object = body, path = '/orders') => {
    const request = app.http().post(path);
    return (key === undefined ? request : request.set('Idempotency-Key', key)).send(sent);
  };

  beforeAll(async () => {
    // Registered before the application is created, as an instrumentation file does.
    telemetry = TestTelemetry.install();
    db = await createTestDatabase();
    app = await createTestApp(adapter, TelemetryAppModule.register(db.url));

    // One request of each outcome the /orders routes can have.
    expect((await order(keys.replayed)).status).toBe(201);
    const replay = await order(keys.replayed);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect((await order(keys.replayed, { item: 'pen' })).status).toBe(422);
    expect((await order(undefined)).status).toBe(400);
    expect((await order('x'.repeat(256))).status).toBe(400);
    const [first, duplicate] = await Promise.all([
      order(keys.slow, body, '/orders?delayMs=400'),
      sleep(150).then(() => order(keys.slow, body, '/orders?delayMs=400')),
    ]);
    expect([first.status, duplicate.status]).toEqual([201, 409]);
    expect((await order(keys.failed, body, '/orders/status/500')).status).toBe(500);
    // Refused by the route's ParseIntPipe: the handler never ran.
    expect((await order(keys.piped, body, '/orders/status/abc')).status).toBe(400);
    expect((await order(keys.raw, body, '/orders/raw')).status).toBe(201);
    expect((await order(keys.raw, body, '/orders/raw')).status).toBe(410);
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await telemetry?.shutdown();
  });

  it('counts each request once, by outcome, route template and method', async () => {
    const requests = await telemetry.points('idempotency.requests');
    expect(byLabel(requests, '/orders')).toEqual({
      'POST /orders completed': 2,
      'POST /orders replayed': 1,
      'POST /orders mismatch': 1,
      'POST /orders key_missing': 1,
      'POST /orders key_invalid': 1,
      'POST /orders conflict': 1,
      'POST /orders/status/:code released': 1,
      'POST /orders/status/:code not_started': 1,
      'POST /orders/raw not_replayable': 2,
    });
  });

  it('records claim and handler durations in seconds, by outcome', async () => {
    const claims = await telemetry.histogram('idempotency.claim.duration');
    // Every claim, by the store's answer; requests refused before a claim have none.
    expect(countsByLabel(claims, '/orders')).toEqual({
      'POST /orders claimed': 2,
      'POST /orders replayed': 1,
      'POST /orders mismatch': 1,
      'POST /orders conflict': 1,
      'POST /orders/status/:code claimed': 2,
      'POST /orders/raw claimed': 1,
      'POST /orders/raw not_replayable': 1,
    });
    for (const point of claims) {
      expect(point.value.sum).toBeGreaterThan(0);
      expect(point.value.sum).toBeLessThan(2);
    }

    const handlers = await telemetry.histogram('idempotency.handler.duration');
    // Only runs have a handler duration: not the replay, the mismatch, the conflict, or the
    // request the pipes refused (its time is theirs).
    expect(countsByLabel(handlers, '/orders')).toEqual({
      'POST /orders completed': 2,
      'POST /orders/status/:code released': 1,
      'POST /orders/raw not_replayable': 1,
    });
    // One of the two completed runs slept 400 ms: 0.4 in seconds, not 400.
    const completed = findPoint(handlers, {
      'idempotency.outcome': 'completed',
      'http.route': '/orders',
    });
    expect(completed.value.sum).toBeGreaterThanOrEqual(0.39);
    expect(completed.value.sum).toBeLessThan(3);
    expect(completed.value.max).toBeGreaterThanOrEqual(0.39);

    // No route of the scenario waits ('reject' mode).
    expect(
      countsByLabel(await telemetry.histogram('idempotency.wait.duration'), '/orders'),
    ).toEqual({});
  });

  it('spans the claim and the record write, with the key hash and never the key', async () => {
    const spans = telemetry.spans();
    expect(describeSpans(idempotencySpans(spans, keys.replayed))).toEqual([
      'idempotency.claim claimed',
      'idempotency.claim mismatch',
      'idempotency.claim replayed',
      'idempotency.record completed complete',
    ]);
    expect(describeSpans(idempotencySpans(spans, keys.slow))).toEqual([
      'idempotency.claim claimed',
      'idempotency.claim conflict',
      'idempotency.record completed complete',
    ]);
    expect(describeSpans(idempotencySpans(spans, keys.failed))).toEqual([
      'idempotency.claim claimed',
      'idempotency.record released release',
    ]);
    // Refused by the pipes: the key is freed for the corrected request (the write's outcome; the
    // request counts as not_started).
    expect(describeSpans(idempotencySpans(spans, keys.piped))).toEqual([
      'idempotency.claim claimed',
      'idempotency.record released release',
    ]);
    // A handler that writes its own response: its key is marked spent before and after it runs.
    expect(describeSpans(idempotencySpans(spans, keys.raw))).toEqual([
      'idempotency.claim claimed',
      'idempotency.claim not_replayable',
      'idempotency.record not_replayable mark_not_replayable',
      'idempotency.record not_replayable mark_not_replayable',
    ]);

    const ours = spans.filter((span) => span.name.startsWith('idempotency.'));
    expect(ours).toHaveLength(15);
    const servers = new Map(
      spans
        .filter((span) => span.name === SERVER_SPAN)
        .map((span) => [span.spanContext().spanId, span]),
    );
    for (const span of ours) {
      expect(span.attributes['http.request.method']).toBe('POST');
      expect(String(span.attributes['http.route'])).toMatch(/^\/orders/);
      expect(span.status.code).not.toBe(2); // SpanStatusCode.ERROR
      // A child of the request's server span, in its trace.
      const parent = servers.get(span.parentSpanContext?.spanId ?? '');
      expect(parent?.spanContext().traceId).toBe(span.spanContext().traceId);
    }
    const exported = JSON.stringify(
      spans.map(({ name, attributes, events }) => ({ name, attributes, events })),
    );
    for (const key of Object.values(keys)) {
      expect(exported).not.toContain(key);
    }
  });

  it('spans the commit of a transactional route', async () => {
    const key = `otel-ledger-${adapter}`;
    expect(
      (await app.http().post('/ledger/entries').set('Idempotency-Key', key).send()).status,
    ).toBe(201);
    expect(describeSpans(idempotencySpans(telemetry.spans(), key))).toEqual([
      'idempotency.claim claimed',
      'idempotency.record completed complete',
    ]);
    expect(byLabel(await telemetry.points('idempotency.requests'), '/ledger/entries')).toEqual({
      'POST /ledger/entries completed': 1,
    });
  });

  it("records how long a duplicate waited, apart from its claim ('wait' mode)", async () => {
    const key = `otel-wait-${adapter}`;
    const wait = (delayMs: number) =>
      app
        .http()
        .post('/ledger/lease-wait')
        .set('Idempotency-Key', key)
        .set('X-Delay-Ms', String(delayMs))
        .send();
    const [first, duplicate] = await Promise.all([wait(500), sleep(150).then(() => wait(0))]);
    expect(first.status).toBe(201);
    expect(duplicate.status).toBe(201);
    expect(duplicate.headers['idempotent-replayed']).toBe('true');

    const route = { 'http.route': '/ledger/lease-wait', 'idempotency.outcome': 'replayed' };
    const waited = findPoint(await telemetry.histogram('idempotency.wait.duration'), route);
    expect(waited.value.count).toBe(1);
    expect(waited.value.sum).toBeGreaterThanOrEqual(0.1);
    expect(waited.value.sum).toBeLessThan(3);
    const claimed = findPoint(await telemetry.histogram('idempotency.claim.duration'), route);
    expect(claimed.value.count).toBe(1);
    expect(claimed.value.sum).toBeLessThan(waited.value.sum as number);
  });

  it('counts purge passes and the records they deleted', async () => {
    const expired = await db.query(
      "UPDATE idempotency_records SET expires_at = now() - interval '1 hour' WHERE key = ANY($1) RETURNING key",
      [[keys.replayed, keys.slow]],
    );
    expect(expired).toHaveLength(2);
    expect(await app.app.get(IdempotencyPurger).purgeNow()).toBe(2);

    const store = { 'idempotency.store': 'PostgresIdempotencyStore' };
    expect(
      (await telemetry.points('idempotency.purge.deleted')).map((p) => [p.attributes, p.value]),
    ).toEqual([[store, 2]]);
    const passes = await telemetry.histogram('idempotency.purge.duration');
    expect(passes.map((p) => [p.attributes, p.value.count])).toEqual([[store, 1]]);
  });
});

class StoreDownError extends Error {}

/** An in-memory store whose claims and upkeep fail while `down`. */
class UnreliableStore extends InMemoryIdempotencyStore {
  down = false;
  /** Refuses to store responses only: the claim and the handler go through. */
  writesDown = false;

  override complete(
    handle: Parameters<InMemoryIdempotencyStore['complete']>[0],
    response: Parameters<InMemoryIdempotencyStore['complete']>[1],
    ttlMs: number,
  ): Promise<boolean> {
    return this.writesDown
      ? Promise.reject(new StoreDownError('store down'))
      : super.complete(handle, response, ttlMs);
  }

  override markNotReplayable(
    ...args: Parameters<InMemoryIdempotencyStore['markNotReplayable']>
  ): Promise<boolean> {
    return this.writesDown
      ? Promise.reject(new StoreDownError('store down'))
      : super.markNotReplayable(...args);
  }

  override release(...args: Parameters<InMemoryIdempotencyStore['release']>): Promise<boolean> {
    return this.writesDown
      ? Promise.reject(new StoreDownError('store down'))
      : super.release(...args);
  }

  override claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.down ? Promise.reject(new StoreDownError('store down')) : super.claim(request);
  }

  override maintain(): Promise<void> {
    return this.down ? Promise.reject(new StoreDownError('store down')) : Promise.resolve();
  }
}

describe.each(ADAPTERS)('OpenTelemetry on store failures (%s)', (adapter) => {
  let telemetry: TestTelemetry;
  let store: UnreliableStore;
  let app: TestApp;

  beforeAll(async () => {
    telemetry = TestTelemetry.install();
    store = new UnreliableStore();
    app = await createTestApp(adapter, StoreOnlyAppModule.register(store));
  });

  afterAll(async () => {
    await app?.close();
    await telemetry?.shutdown();
  });

  it('counts a failed claim as store_error, and marks its span as an error', async () => {
    const key = `otel-down-${adapter}`;
    store.down = true;
    try {
      expect((await app.http().post('/things').set('Idempotency-Key', key).send()).status).toBe(
        503,
      );
    } finally {
      store.down = false;
    }
    const requests = await telemetry.points('idempotency.requests');
    expect(requests.map((point) => [label(point.attributes), point.value])).toEqual([
      ['POST /things store_error', 1],
    ]);
    const claims = await telemetry.histogram('idempotency.claim.duration');
    expect(claims.map((point) => [label(point.attributes), point.value.count])).toEqual([
      ['POST /things store_error', 1],
    ]);

    const [span] = idempotencySpans(telemetry.spans(), key);
    expect(span.name).toBe('idempotency.claim');
    expect(span.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(span.attributes['idempotency.outcome']).toBe('store_error');
    expect(span.attributes['error.type']).toBe('StoreDownError');
    expect(span.events.map((event) => event.name)).toEqual(['exception']);
  });

  it('records runs of the upkeep, with error.type when one fails', async () => {
    const maintenance = app.app.get(IdempotencyMaintenance);
    await maintenance.maintainNow();
    store.down = true;
    try {
      await expect(maintenance.maintainNow()).rejects.toThrow(StoreDownError);
    } finally {
      store.down = false;
    }
    const runs = await telemetry.histogram('idempotency.maintenance.duration');
    expect(runs.map((point) => [point.attributes, point.value.count])).toEqual([
      [{ 'idempotency.store': 'UnreliableStore' }, 1],
      [{ 'idempotency.store': 'UnreliableStore', 'error.type': 'StoreDownError' }, 1],
    ]);
  });
});

describe.each(ADAPTERS)('OpenTelemetry on a failed record write (%s)', (adapter) => {
  let telemetry: TestTelemetry;
  let store: UnreliableStore;
  let app: TestApp;

  beforeAll(async () => {
    telemetry = TestTelemetry.install();
    store = new UnreliableStore();
    app = await createTestApp(adapter, StoreOnlyAppModule.register(store));
  });

  afterAll(async () => {
    await app?.close();
    await telemetry?.shutdown();
  });

  it('counts the request once as store_error, and marks the record span as an error', async () => {
    const key = `otel-write-down-${adapter}`;
    store.writesDown = true;
    try {
      // The handler ran: its client gets the response although it could not be stored.
      expect((await app.http().post('/things').set('Idempotency-Key', key).send()).status).toBe(
        201,
      );
    } finally {
      store.writesDown = false;
    }
    const requests = await telemetry.points('idempotency.requests');
    expect(requests.map((point) => [label(point.attributes), point.value])).toEqual([
      ['POST /things store_error', 1],
    ]);
    const records = idempotencySpans(telemetry.spans(), key).filter(
      (span) => span.name === 'idempotency.record',
    );
    expect(records.length).toBeGreaterThanOrEqual(1);
    const [complete] = records;
    expect(complete.attributes['idempotency.record.action']).toBe('complete');
    expect(complete.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(complete.attributes['idempotency.outcome']).toBe('store_error');
    expect(complete.attributes['error.type']).toBe('StoreDownError');
  });

  it('counts once a request whose mark and then release both failed', async () => {
    const key = `otel-mark-down-${adapter}`;
    store.writesDown = true;
    try {
      expect((await app.http().post('/things/raw').set('Idempotency-Key', key).send()).status).toBe(
        503,
      );
    } finally {
      store.writesDown = false;
    }
    // Both failures are reported (the refused mark, then the release behind it): one count.
    await waitFor(async () =>
      idempotencySpans(telemetry.spans(), key).some(
        (span) => span.attributes['idempotency.record.action'] === 'release',
      ),
    );
    const requests = await telemetry.points('idempotency.requests');
    expect(
      requests
        .filter((point) => label(point.attributes).startsWith('POST /things/raw'))
        .map((point) => [label(point.attributes), point.value]),
    ).toEqual([['POST /things/raw store_error', 1]]);
  });
});

describe.each(ADAPTERS)('OpenTelemetry turned off or absent (%s)', (adapter) => {
  const replays = async (app: TestApp, key: string) => {
    const first = await app.http().post('/things').set('Idempotency-Key', key).send();
    const second = await app.http().post('/things').set('Idempotency-Key', key).send();
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.headers['idempotent-replayed']).toBe('true');
  };

  it('records nothing with telemetry: false, though an SDK is registered', async () => {
    const telemetry = TestTelemetry.install();
    const app = await createTestApp(
      adapter,
      StoreOnlyAppModule.register(new InMemoryIdempotencyStore(), { telemetry: false }),
    );
    try {
      expect(app.app.get(IDEMPOTENCY_TELEMETRY)).toBeNull();
      await replays(app, `otel-off-${adapter}`);
      await app.app.get(IdempotencyPurger).purgeNow();
      expect(await telemetry.metricNames()).toEqual([]);
      expect(telemetry.spans()).toEqual([]);
    } finally {
      await app.close();
      await telemetry.shutdown();
    }
  });

  it('works with no SDK registered (the API answers with no-ops)', async () => {
    uninstallTelemetry();
    const app = await createTestApp(
      adapter,
      StoreOnlyAppModule.register(new InMemoryIdempotencyStore()),
    );
    try {
      expect(app.app.get(IDEMPOTENCY_TELEMETRY)).toBeInstanceOf(IdempotencyTelemetry);
      await replays(app, `otel-no-sdk-${adapter}`);
      const conflicting = await app.http().post('/things').set('Idempotency-Key', '').send();
      expect(conflicting.status).toBe(400);
      expect(await app.app.get(IdempotencyPurger).purgeNow()).toBe(0);
    } finally {
      await app.close();
    }
  });
});

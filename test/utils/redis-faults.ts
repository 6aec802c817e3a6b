import {
  Body,
  Controller,
  type DynamicModule,
  Headers,
  Inject,
  Module,
  Post,
} from '@nestjs/common';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { IdempotencyModule, type IdempotencyModuleForRootOptions, Idempotent } from '../../lib';
import { redisKeyName } from '../../lib/redis/redis-key';
import { type RawAnswer, postRaw } from './redis-sample-app';
import type { RedisCluster, RedisServer } from './redis-servers';
import { waitFor } from './wait-for';

/*
 * What the Redis fault tests share: a small app whose one idempotent route records each run in
 * PostgreSQL, a bounded load of fresh keys (with concurrent duplicates) against it, and the
 * cluster's roles as Redis reports them.
 */

/** Where the app records its runs: one row per execution of the handler. */
export const LEDGER = Symbol('redis-faults:ledger');
/** Anonymous requests: every key of the app is in scope `''`. */
export const FAULT_SCOPE = '';

export const INSERT_RUN = 'INSERT INTO executions (route, idem_key) VALUES ($1, $2) RETURNING id';

/**
 * `POST /pay`: idempotent (lease mode), records its run in PostgreSQL first, then works for
 * `X-Work-Ms` (not fingerprinted) and answers with the run's id.
 */
@Controller('pay')
class LedgerController {
  constructor(@Inject(LEDGER) private readonly ledger: pg.Pool) {}

  @Post()
  @Idempotent()
  async pay(
    @Body() body: { n?: number },
    @Headers('idempotency-key') key: string,
    @Headers('x-work-ms') workMs?: string,
  ) {
    const { rows } = await this.ledger.query<{ id: number }>(INSERT_RUN, ['redis', key]);
    await sleep(Number(workMs ?? 0));
    return { key, execution: rows[0].id, n: body.n ?? null };
  }
}

/** The app under fault: `options` (a Redis store among them) and the ledger's pool. */
export function ledgerAppModule(
  options: IdempotencyModuleForRootOptions,
  ledger: pg.Pool,
): DynamicModule {
  @Module({})
  class LedgerAppModule {}
  return {
    module: LedgerAppModule,
    imports: [IdempotencyModule.forRoot(options)],
    controllers: [LedgerController],
    providers: [{ provide: LEDGER, useValue: ledger }],
  };
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The Cluster slot of the record of `key` (anonymous scope, default prefix): CRC16 (XMODEM) of
 * its name, modulo 16 384. The names hold no `{`, so no hash tag applies.
 */
export function slotOfKey(key: string): number {
  let crc = 0;
  for (const byte of Buffer.from(redisKeyName('idempotency:', FAULT_SCOPE, key))) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc % 16_384;
}

/** One request of a load and its answer. */
export interface Sent {
  key: string;
  /** The body's `n`: a retry must send the same body, or it is a mismatch (422). */
  n: number;
  kind: 'load' | 'duplicate' | 'retry' | 'probe';
  answer: RawAnswer;
}

export const isFresh201 = (sent: Sent) =>
  sent.answer.status === 201 && sent.answer.headers['idempotent-replayed'] === undefined;

export function pay(
  baseUrl: string,
  key: string,
  n: number,
  workMs: number,
  timeoutMs: number,
): Promise<RawAnswer> {
  return postRaw(
    baseUrl,
    '/pay',
    { 'idempotency-key': key, 'x-work-ms': String(workMs) },
    { n },
    timeoutMs,
  );
}

export interface LoadOptions {
  baseUrl: string;
  /** Every key starts with it (unique per scenario). */
  prefix: string;
  workers: number;
  /** Every `duplicateEvery`-th key of a worker is sent twice at once. */
  duplicateEvery: number;
  workMs: number;
  /** Only ends a request that truly hangs (its latency is still recorded). */
  clientTimeoutMs: number;
}

/**
 * Starts `workers` loops, each sending fresh keys one after the other (some twice at once) until
 * `stop()`, which resolves with every request sent. Bounded: at most 2 × workers in flight.
 */
export function startLoad(options: LoadOptions): { stop(): Promise<Sent[]> } {
  const sent: Sent[] = [];
  let running = true;
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      const key = `${options.prefix}-${w}-${i}`;
      const once = (kind: Sent['kind']) =>
        pay(options.baseUrl, key, i, options.workMs, options.clientTimeoutMs).then((answer) => {
          sent.push({ key, n: i, kind, answer });
          return answer;
        });
      const answers = [once('load')];
      if (i % options.duplicateEvery === 0) {
        answers.push(once('duplicate'));
      }
      const [first] = await Promise.all(answers);
      if (first.status === 503 || first.status === 0) {
        await sleep(20); // no busy loop against a dead store
      }
    }
  };
  const loops = Array.from({ length: options.workers }, (_, w) => worker(w));
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return sent;
    },
  };
}

/** Distinct keys of `sent`, in first-sent order. */
export function keysOf(sent: Sent[]): string[] {
  return [...new Set(sent.map((item) => item.key))];
}

/** Sends every key of `sent` once more, with its body, `concurrency` at a time. */
export function retryAll(
  baseUrl: string,
  sent: Sent[],
  concurrency: number,
  timeoutMs: number,
): Promise<Sent[]> {
  const bodies = new Map(sent.map((item) => [item.key, item.n]));
  return eachBounded([...bodies], concurrency, async ([key, n]) => ({
    key,
    n,
    kind: 'retry' as const,
    answer: await pay(baseUrl, key, n, 0, timeoutMs),
  }));
}

/** Sends `run` for each item, `concurrency` at a time. */
export async function eachBounded<T, R>(
  items: T[],
  concurrency: number,
  run: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await run(items[index]);
      }
    }),
  );
  return results;
}

/** `ROLE` of the server on `port`: `master` or `slave`, with its replicas' ports or its primary's. */
export async function roleOf(
  port: number,
): Promise<
  { role: 'master'; replicas: number[] } | { role: 'slave'; primary: number } | undefined
> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    commandTimeout: 1000,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = (await client.call('ROLE')) as unknown[];
    if (reply[0] === 'master') {
      const replicas = (reply[2] as unknown[][]).map((entry) => Number(entry[1]));
      return { role: 'master', replicas };
    }
    return { role: 'slave', primary: Number(reply[2]) };
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/**
 * Closes the primary's connections to its replicas (`CLIENT KILL TYPE replica`), so that what it
 * acknowledges from now on is not replicated until a replica connects again.
 */
export async function dropReplicaLinks(primaryPort: number): Promise<number> {
  const client = new Redis({
    host: '127.0.0.1',
    port: primaryPort,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return Number(await client.call('CLIENT', 'KILL', 'TYPE', 'replica'));
  } finally {
    client.disconnect();
  }
}

/** `CLUSTER SLOTS` of the node on `port`: which primary port serves each slot range. */
export async function slotOwners(
  port: number,
): Promise<{ from: number; to: number; port: number }[]> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    return reply.map(([from, to, primary]) => ({ from, to, port: Number(primary[1]) }));
  } finally {
    client.disconnect();
  }
}

/** A primary of `cluster` that has a replica attached, with that replica. */
export async function primaryWithReplica(
  cluster: RedisCluster,
  exclude: number[] = [],
): Promise<{ primary: RedisServer; replica: RedisServer }> {
  for (const server of cluster.servers) {
    if (exclude.includes(server.port)) {
      continue;
    }
    const role = await roleOf(server.port);
    if (role?.role === 'master' && role.replicas.length > 0) {
      const replica = cluster.servers.find((other) => other.port === role.replicas[0]);
      if (replica) {
        return { primary: server, replica };
      }
    }
  }
  throw new Error('no primary with a replica in the cluster');
}

/** Waits until `replica` is a primary and every live node reports the cluster ok. */
export async function waitForPromotion(
  cluster: RedisCluster,
  replica: RedisServer,
  dead: number[],
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    async () => {
      if ((await roleOf(replica.port))?.role !== 'master') {
        return false;
      }
      for (const server of cluster.servers) {
        if (dead.includes(server.port)) {
          continue;
        }
        const owners = await slotOwners(server.port).catch(() => []);
        if (owners.some((owner) => dead.includes(owner.port))) {
          return false;
        }
      }
      return true;
    },
    timeoutMs,
    100,
  );
}

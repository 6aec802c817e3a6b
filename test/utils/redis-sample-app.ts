import { type IncomingHttpHeaders, request } from 'node:http';
import { type SampleAppProcess, startSampleAppProcess } from './sample-app-process';
import type { AdapterName } from './test-app';

/*
 * The sample app as a child process with IDEMPOTENCY_STORE=redis, and a raw HTTP client that
 * keeps the exact bytes of each answer, for the tests that compare a replay with its original.
 */

/** Where the sample app's Redis is: a standalone server's URL or some Cluster nodes. */
export type SampleAppRedis = { url: string } | { clusterNodes: { host: string; port: number }[] };

export interface RedisSampleAppOptions {
  adapter: AdapterName;
  redis: SampleAppRedis;
  databaseUrl: string;
  paymentLatencyMs: number;
  lockTimeoutMs: number;
}

/** Starts the compiled sample app with `/payments` on Redis and `/transfers` on PostgreSQL. */
export function startRedisSampleApp(options: RedisSampleAppOptions): Promise<SampleAppProcess> {
  const redis: Record<string, string> =
    'url' in options.redis
      ? { REDIS_URL: options.redis.url }
      : {
          REDIS_CLUSTER_NODES: options.redis.clusterNodes
            .map((node) => `${node.host}:${node.port}`)
            .join(','),
        };
  return startSampleAppProcess({
    env: {
      DATABASE_URL: options.databaseUrl,
      HTTP_ADAPTER: options.adapter,
      IDEMPOTENCY_STORE: 'redis',
      PAYMENT_LATENCY_MS: String(options.paymentLatencyMs),
      IDEMPOTENCY_LOCK_TIMEOUT_MS: String(options.lockTimeoutMs),
      ...redis,
    },
  });
}

/** One answer as it came over the wire; `status` 0 when none came (`error` says why). */
export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  startedAt: number;
  latencyMs: number;
  error?: string;
}

/**
 * POSTs `body` (an object, sent as JSON) on a fresh connection and resolves with the raw answer,
 * never rejecting: a connection error or no answer within `timeoutMs` is status 0.
 */
export function postRaw(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  body: unknown,
  timeoutMs = 30_000,
): Promise<RawAnswer> {
  const payload = JSON.stringify(body);
  const startedAt = Date.now();
  return new Promise((settle) => {
    let settled = false;
    const finish = (answer: Omit<RawAnswer, 'startedAt' | 'latencyMs'>) => {
      if (!settled) {
        settled = true;
        settle({ ...answer, startedAt, latencyMs: Date.now() - startedAt });
      }
    };
    const fail = (error: unknown) =>
      finish({ status: 0, headers: {}, body: Buffer.alloc(0), error: String(error) });
    const outgoing = request(
      new URL(path, baseUrl),
      {
        method: 'POST',
        agent: false,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          finish({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks),
          }),
        );
        response.on('error', fail);
      },
    );
    outgoing.setTimeout(timeoutMs, () =>
      outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)),
    );
    outgoing.on('error', fail);
    outgoing.end(payload);
  });
}

/** The parsed JSON body of an answer. */
export function jsonOf<T = Record<string, unknown>>(answer: RawAnswer): T {
  return JSON.parse(answer.body.toString('utf8')) as T;
}

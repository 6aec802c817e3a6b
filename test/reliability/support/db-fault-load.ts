import { createHash } from 'node:crypto';
import { type IncomingHttpHeaders, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IdempotencyOutcomeEvent } from '../../../lib';

export type FaultRoute = 'lease' | 'transactional';

/** Why a request was sent: steady load, its concurrent twin, a probe, or a check after recovery. */
export type ExchangeKind = 'load' | 'duplicate' | 'probe' | 'retry' | 'replay-check';

/** One request and what came back, as the client saw it. */
export interface Exchange {
  route: FaultRoute;
  key: string;
  kind: ExchangeKind;
  /** HTTP status; 0 when no response came (connection error or client timeout). */
  status: number;
  replayed: boolean;
  contentType: string;
  retryAfter: string | null;
  /** The `type` of a problem+json body. */
  problemType: string | null;
  text: string;
  startedAt: number;
  latencyMs: number;
  error?: string;
}

/** An `onOutcome` event, kept for explaining 5xx answers. */
export interface RecordedOutcome {
  outcome: IdempotencyOutcomeEvent['outcome'];
  keyHash: string;
  status?: number;
  cause?: string;
}

export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** A short name for the error behind a `store-error` or `released` event. */
export function describeCause(error: unknown): string {
  if (error === undefined) {
    return 'none';
  }
  const shape = error as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    driverError?: { code?: unknown; message?: unknown };
  };
  const code = shape.driverError?.code ?? shape.code;
  const message = String(shape.driverError?.message ?? shape.message ?? error);
  if (shape.name === 'StoreTimeoutError') {
    return 'store timeout';
  }
  if (/left a statement .* unanswered/.test(message)) {
    return 'statement unanswered, connection closed';
  }
  if (message.includes('recording in the transaction failed')) {
    return 'commit failed';
  }
  if (code === 'ECONNREFUSED') {
    return 'connection refused';
  }
  if (code === 'ECONNRESET') {
    return 'connection reset';
  }
  if (code === '57P01') {
    return 'terminated by shutdown (57P01)';
  }
  if (code === '57P02' || code === '57P03') {
    return `server crashed/starting (${String(code)})`;
  }
  if (
    /Connection terminated|connection.*closed|Client has encountered a connection error/i.test(
      message,
    )
  ) {
    return 'connection lost';
  }
  const prefix = shape.name === 'QueryFailedError' ? 'query failed: ' : '';
  return `${prefix}${typeof code === 'string' ? `${code} ` : ''}${message.slice(0, 80)}`;
}

/** POSTs JSON on a fresh connection (no keep-alive races) and times the answer. */
export function postJson(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<Omit<Exchange, 'route' | 'key' | 'kind'>> {
  const url = new URL(path, baseUrl);
  const startedAt = Date.now();
  return new Promise((settle) => {
    const finish = (
      status: number,
      responseHeaders: IncomingHttpHeaders,
      text: string,
      error?: string,
    ) => {
      const contentType = String(responseHeaders['content-type'] ?? '');
      let problemType: string | null = null;
      if (contentType.startsWith('application/problem+json')) {
        try {
          problemType = String((JSON.parse(text) as { type?: unknown }).type ?? '');
        } catch {
          problemType = '(unparseable)';
        }
      }
      settle({
        status,
        replayed: responseHeaders['idempotent-replayed'] === 'true',
        contentType,
        retryAfter: (responseHeaders['retry-after'] as string | undefined) ?? null,
        problemType,
        text,
        startedAt,
        latencyMs: Date.now() - startedAt,
        ...(error === undefined ? {} : { error }),
      });
    };
    const outgoing = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          finish(
            response.statusCode ?? 0,
            response.headers,
            Buffer.concat(chunks).toString('utf8'),
          ),
        );
        response.on('error', (error) => finish(0, {}, '', String(error)));
      },
    );
    outgoing.setTimeout(timeoutMs, () =>
      outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)),
    );
    outgoing.on('error', (error) => finish(0, {}, '', String(error)));
    outgoing.end(body);
  });
}

export interface LoadOptions {
  baseUrl: string;
  /** Prefix of every key this load sends (unique per run). */
  prefix: string;
  workers: number;
  /** Every `duplicateEvery`-th request of a worker is sent twice at once, with one key. */
  duplicateEvery: number;
  workMs: number;
  clientTimeoutMs: number;
}

/**
 * Steady load on both routes: each worker sends fresh keys one after another, half of the workers
 * on each route, some requests as concurrent duplicate pairs. Everything is kept for assertions.
 */
export class FaultLoad {
  readonly exchanges: Exchange[] = [];
  private stopping = false;
  private running: Promise<void>[] = [];

  constructor(private readonly options: LoadOptions) {}

  start(): this {
    this.running = Array.from({ length: this.options.workers }, (_, worker) =>
      this.work(worker, worker % 2 === 0 ? 'lease' : 'transactional'),
    );
    return this;
  }

  /** Lets every worker finish its request in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  /**
   * The same request as the load sends for `key` (the body is derived from the key), with `headers`
   * besides (they are not fingerprinted).
   */
  send(
    route: FaultRoute,
    key: string,
    kind: ExchangeKind,
    headers: Record<string, string> = {},
  ): Promise<Exchange> {
    const { baseUrl, workMs, clientTimeoutMs } = this.options;
    const body = JSON.stringify({ n: Number(/(\d+)$/.exec(key)?.[1] ?? 0) });
    return postJson(
      baseUrl,
      `/faults/${route}`,
      { ...headers, 'idempotency-key': key, 'x-work-ms': String(workMs) },
      body,
      clientTimeoutMs,
    ).then((result) => {
      const exchange: Exchange = { route, key, kind, ...result };
      this.exchanges.push(exchange);
      return exchange;
    });
  }

  private async work(worker: number, route: FaultRoute): Promise<void> {
    // Bounded even if stop() were never called: a worker sends at most this many requests.
    for (let i = 0; !this.stopping && i < 100_000; i++) {
      const key = `${this.options.prefix}-${route}-w${worker}-${i}`;
      if (i % this.options.duplicateEvery === this.options.duplicateEvery - 1) {
        await Promise.all([this.send(route, key, 'load'), this.send(route, key, 'duplicate')]);
      } else {
        await this.send(route, key, 'load');
      }
      // A short pause so that a failing fast path (503 in a millisecond) does not spin the CPU.
      await sleep(5);
    }
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) {
    return 0;
  }
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Counts of each value, as `{ value: count }`, in descending count order. */
export function tally(values: readonly string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) {
    counts.set(value, (counts.get(value) ?? 0) + 1);
  }
  return Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]));
}

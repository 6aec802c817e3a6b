import { Agent, type IncomingHttpHeaders, request } from 'node:http';

/** One HTTP request of a load run. */
export interface HttpCall {
  /** Base URL of the app, e.g. `http://127.0.0.1:41234`. */
  baseUrl: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** The request fails with `error: 'timeout'` after this. Default: 30 000 ms. */
  timeoutMs?: number;
}

/** What came back, or why nothing did. Never thrown: a load run records failures. */
export interface HttpResult {
  /** `null` when no response arrived (connection refused or reset, timeout). */
  status: number | null;
  /** The error code when no response arrived: `ECONNRESET`, `ECONNREFUSED`, `timeout`, ... */
  error?: string;
  headers: IncomingHttpHeaders;
  text: string;
  /** `Date.now()` when the request was sent and when it settled. */
  sentAt: number;
  settledAt: number;
  latencyMs: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/**
 * Idle keep-alive sockets are closed after this, well before the servers close them (Node's
 * default keep-alive timeout is 5 s), so a request rarely picks a socket the server is closing.
 */
const IDLE_SOCKET_MS = 1_000;
/** Errors of a reused keep-alive socket that the server closed as the request went out. */
const STALE_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

/** A settled request, and whether it failed on a reused socket before any response arrived. */
interface Attempt {
  result: Omit<HttpResult, 'sentAt' | 'settledAt' | 'latencyMs'>;
  staleSocket: boolean;
}

/**
 * Sends requests over keep-alive connections (one pool for all targets), so hundreds of parallel
 * requests do not pay a TCP handshake each. `close()` ends the pool's idle sockets.
 */
export class LoadClient {
  private readonly agent: Agent;
  private resent = 0;

  constructor(options: { maxSockets?: number } = {}) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: options.maxSockets ?? 512,
      timeout: IDLE_SOCKET_MS,
    });
  }

  /**
   * Requests that were sent a second time because the first try failed on a reused keep-alive
   * socket before anything came back (the race Node's documentation describes for `reusedSocket`):
   * the request never reached the app, so this is not a retry the app could see twice.
   */
  get resentOnStaleSocket(): number {
    return this.resent;
  }

  async send(call: HttpCall): Promise<HttpResult> {
    const sentAt = Date.now();
    let attempt = await this.attempt(call);
    if (attempt.staleSocket) {
      this.resent++;
      attempt = await this.attempt(call);
    }
    const settledAt = Date.now();
    return { ...attempt.result, sentAt, settledAt, latencyMs: settledAt - sentAt };
  }

  close(): void {
    this.agent.destroy();
  }

  private attempt(call: HttpCall): Promise<Attempt> {
    const payload = call.body === undefined ? undefined : JSON.stringify(call.body);
    const headers: Record<string, string> = { ...call.headers };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise<Attempt>((settle) => {
      let done = false;
      let answered = false;
      const finish = (result: Attempt['result'], staleSocket = false) => {
        if (!done) {
          done = true;
          settle({ result, staleSocket });
        }
      };
      const outgoing = request(
        new URL(call.path, call.baseUrl),
        { method: call.method, headers, agent: this.agent },
        (response) => {
          answered = true;
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            finish({
              status: response.statusCode ?? null,
              headers: response.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          response.on('error', (error: NodeJS.ErrnoException) =>
            finish({ status: null, error: error.code ?? error.message, headers: {}, text: '' }),
          );
        },
      );
      outgoing.setTimeout(call.timeoutMs ?? DEFAULT_TIMEOUT_MS, () =>
        outgoing.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })),
      );
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        const code = error.code ?? error.message;
        finish(
          { status: null, error: code, headers: {}, text: '' },
          outgoing.reusedSocket && !answered && STALE_SOCKET_ERRORS.has(code),
        );
      });
      outgoing.end(payload);
    });
  }
}

/**
 * Runs `task(0) ... task(count - 1)` with at most `concurrency` of them in flight, and returns
 * their results in index order.
 */
export async function runBounded<T>(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return results;
}

/** `items` in a random order (Fisher-Yates), leaving `items` as it is. */
export function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** Whether a response is a replay of a stored one. */
export function isReplayed(result: HttpResult): boolean {
  return result.headers['idempotent-replayed'] === 'true';
}

import autocannon from 'autocannon';

/** The body of every benchmarked request (the same for all, so a replay's fingerprint matches). */
const REQUEST_BODY = JSON.stringify({ sku: 'BENCH-0001', quantity: 1, note: 'idempotency bench' });

/** One load run against one route. */
export interface LoadPlan {
  url: string;
  path: string;
  connections: number;
  /** Run for this many seconds ... */
  seconds?: number;
  /** ... or until this many requests were answered. */
  amount?: number;
  /** The `Idempotency-Key` of the n-th request (n counts from 0 across all connections). */
  keyOf: (n: number) => string;
}

/** What the load generator saw. */
export interface LoadOutcome {
  durationS: number;
  /** Requests sent (the denominator of per-request costs: each reached the app). */
  sent: number;
  /** Responses received. */
  completed: number;
  /** Responses per second. */
  rps: number;
  latencyMs: { p50: number; p99: number; mean: number };
  status2xx: number;
  status409: number;
  /** Other statuses, by status. */
  statusOther: Record<string, number>;
  /** Connection errors and timeouts (autocannon counts timeouts as errors too). */
  errors: number;
  timeouts: number;
  /** 2xx responses that carried `Idempotent-Replayed: true`. */
  replayed: number;
  /** Distinct keys sent. */
  keys: Set<string>;
  /** Distinct keys that got a 2xx. */
  acknowledged: Set<string>;
}

interface KeyContext {
  key?: string;
}

/** Runs autocannon with one dynamic `Idempotency-Key` per request and tallies the answers. */
export function runLoad(plan: LoadPlan): Promise<LoadOutcome> {
  let n = 0;
  const keys = new Set<string>();
  const acknowledged = new Set<string>();
  const statusOther: Record<string, number> = {};
  let status2xx = 0;
  let status409 = 0;
  let replayed = 0;
  const request: autocannon.Request = {
    method: 'POST',
    path: plan.path,
    headers: { 'content-type': 'application/json' },
    body: REQUEST_BODY,
    setupRequest: (built, context) => {
      const key = plan.keyOf(n++);
      keys.add(key);
      (context as KeyContext).key = key;
      built.headers = { ...built.headers, 'idempotency-key': key };
      return built;
    },
    onResponse: (status, _body, context, headers) => {
      const key = (context as KeyContext).key;
      if (status >= 200 && status < 300) {
        status2xx++;
        if (key !== undefined) {
          acknowledged.add(key);
        }
        if (isReplay(headers)) {
          replayed++;
        }
      } else if (status === 409) {
        status409++;
      } else {
        statusOther[status] = (statusOther[status] ?? 0) + 1;
      }
    },
  };
  return new Promise((settle, reject) => {
    autocannon(
      {
        url: plan.url,
        connections: plan.connections,
        ...(plan.amount === undefined ? { duration: plan.seconds ?? 1 } : { amount: plan.amount }),
        requests: [request],
        timeout: 20,
      },
      (error: Error | null, result: autocannon.Result) => {
        if (error) {
          reject(error);
          return;
        }
        const completed = status2xx + status409 + sum(Object.values(statusOther));
        settle({
          durationS: result.duration,
          sent: n,
          completed,
          rps: completed / result.duration,
          latencyMs: {
            p50: result.latency.p50,
            p99: result.latency.p99,
            mean: result.latency.mean,
          },
          status2xx,
          status409,
          statusOther,
          errors: result.errors,
          timeouts: result.timeouts,
          replayed,
          keys,
          acknowledged,
        });
      },
    );
  });
}

/** Whether a response carries `Idempotent-Replayed: true` (autocannon keeps the header's case). */
function isReplay(headers: autocannon.Request['headers']): boolean {
  return Object.entries(headers ?? {}).some(
    ([name, value]) => name.toLowerCase() === 'idempotent-replayed' && value === 'true',
  );
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

import { Cluster, Redis } from 'ioredis';
import { positiveOption } from '../idempotency-options.defaults';
import { REDIS_STORE_DEFAULTS, type RedisConnectionOptions } from './redis-store.options';

/**
 * The ioredis settings that make a client fail closed, applied over the user's: a command that
 * cannot be sent now fails now (`enableOfflineQueue: false`) instead of waiting in a queue to run
 * after the request was answered 503; a command in flight when the connection drops fails at
 * once (`maxRetriesPerRequest: 0`) and is never sent again on the next connection
 * (`autoResendUnfulfilledCommands: false`); an unanswered one fails after `commandTimeoutMs`
 * (`commandTimeout`); a connection silent for twice that with commands pending is dropped and
 * opened again (`socketTimeout`), which ioredis keeps retrying by itself.
 */
function failClosedSettings(commandTimeoutMs: number) {
  return {
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: commandTimeoutMs,
    socketTimeout: 2 * commandTimeoutMs,
  };
}

/**
 * Creates an ioredis client for the store with the fail-closed settings (see
 * `RedisConnectionOptions`): a `Redis` for a URL, a standalone server or a Sentinel group, a
 * `Cluster` for a cluster. The caller owns it: close it with `quit()` when done. `redisStore()`
 * uses this; an application that wants to own the store's client uses it too.
 */
export function createRedisClient(connection: RedisConnectionOptions): Redis | Cluster {
  const commandTimeoutMs = positiveOption(
    connection.commandTimeoutMs,
    REDIS_STORE_DEFAULTS.commandTimeoutMs,
    'commandTimeoutMs',
  );
  const settings = failClosedSettings(commandTimeoutMs);
  const { url, redis, cluster } = connection;
  const targets = [url ?? redis, cluster].filter((target) => target !== undefined);
  if (targets.length !== 1) {
    throw new Error(
      'nestjs-idempotency: the Redis store needs exactly one of `url`, `redis` or `cluster`.',
    );
  }
  if (cluster) {
    return new Cluster(cluster.nodes, {
      ...cluster.options,
      enableOfflineQueue: false,
      // See assertFailsClosed: a batch on a Cluster does not follow MOVED.
      enableAutoPipelining: false,
      redisOptions: { ...cluster.options?.redisOptions, ...settings },
    });
  }
  // Auto-pipelining (on unless the application turns it off) sends the client's other commands
  // of one event-loop turn in one write; the store batches its own (sendBufferCommand).
  const options = { enableAutoPipelining: true, ...redis, ...settings, enableOfflineQueue: false };
  return url === undefined ? new Redis(options) : new Redis(url, options);
}

/**
 * Throws unless `client` fails closed: no offline queue, and a command timeout. A client that
 * queues commands while disconnected would run a claim after its request was answered 503.
 *
 * A Cluster client with auto-pipelining is refused: ioredis retries a batch after MOVED or ASK
 * only when all of its commands are read-only, so once a slot moves (a reshard, a manual
 * failover) every batch of scripts on it fails, and its slot map is never refreshed.
 */
export function assertFailsClosed(client: Redis | Cluster): void {
  const { enableOfflineQueue } = client.options;
  if (client.isCluster && client.options.enableAutoPipelining) {
    throw new Error(
      'nestjs-idempotency: the Redis store needs a Cluster client without `enableAutoPipelining`: ioredis does not follow MOVED for a batch of scripts. Create it with createRedisClient(), or turn it off.',
    );
  }
  // isCluster, not instanceof: the application's ioredis may be another copy than ours.
  const commandTimeout = client.isCluster
    ? (client as Cluster).options.redisOptions?.commandTimeout
    : (client as Redis).options.commandTimeout;
  if (enableOfflineQueue !== false || typeof commandTimeout !== 'number') {
    throw new Error(
      'nestjs-idempotency: the Redis store needs a client that fails closed: `enableOfflineQueue: false` and a `commandTimeout`. Create it with createRedisClient(), or set both.',
    );
  }
}

/**
 * Resolves once `client` is connected and ready, connecting a lazy one; rejects after
 * `timeoutMs`. Without an offline queue a command sent before then fails, so the store waits for
 * this at start-up.
 */
export async function whenReady(client: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') {
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (error) {
        reject(error);
      } else {
        resolve();
      }
    };
    const onReady = () => done();
    const onEnd = () => done(new Error('nestjs-idempotency: the Redis client was closed.'));
    const timer = setTimeout(
      () =>
        done(
          new Error(
            `nestjs-idempotency: Redis was not ready within ${timeoutMs} ms (client status: ${client.status}).`,
          ),
        ),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('end', onEnd);
    if (client.status === 'wait') {
      client.connect().catch(() => undefined);
    }
  });
}

/** The first Redis version whose `SET` takes `NX` and `GET` together, as every claim sends it. */
const MINIMUM_VERSION = [7, 0] as const;

/**
 * Checks that the servers the store writes to (every primary of a Cluster) run Redis 7.0 or
 * later, which every claim's `SET NX GET` needs: rejects when one reports an older version. A
 * server that cannot tell (an ACL user without `INFO`, a renamed command) or is not ready within
 * `timeoutMs` is passed over with `warn`: a primary that is down must not keep the other slots
 * from serving, and an old server still answers every claim with a 503, never with a duplicate.
 */
export async function assertServerVersion(
  client: Redis | Cluster,
  timeoutMs: number,
  warn: (message: string) => void,
): Promise<void> {
  const servers = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis];
  const versions = await Promise.all(
    servers.map((server) =>
      serverVersion(server, timeoutMs).catch((error: unknown) => {
        warn(
          `nestjs-idempotency: could not read the Redis version of ${address(server)} (${String(error)}); the store needs Redis ${MINIMUM_VERSION.join('.')} or later.`,
        );
        return undefined;
      }),
    ),
  );
  servers.forEach((server, at) => {
    const version = versions[at];
    if (version === undefined) {
      return;
    }
    const [major, minor] = version.split('.').map(Number);
    if (!(
      major > MINIMUM_VERSION[0] ||
      (major === MINIMUM_VERSION[0] && minor >= MINIMUM_VERSION[1])
    )) {
      throw new Error(
        `nestjs-idempotency: the Redis store needs Redis ${MINIMUM_VERSION.join('.')} or later; ${address(server)} runs ${version}.`,
      );
    }
  });
}

async function serverVersion(server: Redis, timeoutMs: number): Promise<string> {
  // A Cluster connects to a node when it first sends it a command.
  await whenReady(server, timeoutMs);
  const version = /^redis_version:(\S+)/m.exec(await server.info('server'))?.[1];
  if (version === undefined) {
    throw new Error('INFO reports no redis_version');
  }
  return version;
}

function address(server: Redis): string {
  return `${server.options.host ?? ''}:${server.options.port ?? ''}`;
}

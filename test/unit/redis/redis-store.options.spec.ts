import type { Cluster, Redis } from 'ioredis';
import { RedisIdempotencyStore, createRedisClient, redisStore } from '../../../lib/redis';
import { assertServerVersion } from '../../../lib/redis/redis-client';
import { resolveDurability } from '../../../lib/redis/redis-store.options';

describe('resolveDurability', () => {
  it('is unset by default: the primary acknowledges', () => {
    expect(resolveDurability(undefined)).toBeUndefined();
  });

  it('keeps a valid setting, with whole milliseconds', () => {
    expect(resolveDurability({ replicas: 1, timeoutMs: 100.2 })).toEqual({
      replicas: 1,
      timeoutMs: 101,
    });
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses %p replicas', (replicas) => {
    expect(() => resolveDurability({ replicas, timeoutMs: 100 })).toThrow(/replicas/);
  });

  it.each([0, -5, Number.POSITIVE_INFINITY, undefined])(
    'refuses a timeout of %p (WAIT 0 waits forever)',
    (timeoutMs) => {
      expect(() => resolveDurability({ replicas: 1, timeoutMs: timeoutMs as number })).toThrow(
        /timeoutMs/,
      );
    },
  );
});

describe('redisStore', () => {
  it('refuses a WAIT that the command timeout would cut short', () => {
    expect(() =>
      redisStore({ url: 'redis://127.0.0.1:1', durability: { replicas: 1, timeoutMs: 1000 } }),
    ).toThrow(/below commandTimeoutMs \(1000\)/);
    expect(() =>
      redisStore({
        url: 'redis://127.0.0.1:1',
        commandTimeoutMs: 2000,
        durability: { replicas: 1, timeoutMs: 1000 },
      }),
    ).not.toThrow();
  });

  it('keeps a copy of the options, not the caller’s object', () => {
    const options = { url: 'redis://127.0.0.1:1', keyPrefix: 'a:' };
    const provider = redisStore(options);
    options.keyPrefix = 'b:';
    const value = provider.providers?.find(
      (provider) => typeof provider === 'object' && 'useValue' in provider,
    ) as { useValue: { keyPrefix: string } };
    expect(value.useValue.keyPrefix).toBe('a:');
  });
});

describe('createRedisClient', () => {
  it.each([
    [{}],
    [{ url: 'redis://127.0.0.1:1', cluster: { nodes: [] } }],
    [{ redis: { port: 1 }, cluster: { nodes: [] } }],
  ])('needs exactly one of url, redis or cluster (%p)', (connection) => {
    expect(() => createRedisClient(connection)).toThrow(/exactly one of/);
  });

  it('refuses a command timeout that is not positive', () => {
    expect(() => createRedisClient({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 0 })).toThrow(
      /commandTimeoutMs/,
    );
  });
});

describe('the fail-closed settings', () => {
  // lazyConnect: the clients are inspected, never connected.
  const clients: (Redis | Cluster)[] = [];
  afterAll(() => clients.forEach((client) => client.disconnect()));

  it('override what would queue or resend a command', () => {
    const client = createRedisClient({
      redis: {
        lazyConnect: true,
        enableOfflineQueue: true,
        commandTimeout: 60_000,
        maxRetriesPerRequest: 20,
        autoResendUnfulfilledCommands: true,
        enableAutoPipelining: false,
        keyPrefix: 'kept:',
      },
      commandTimeoutMs: 250,
    }) as Redis;
    clients.push(client);
    expect(client.isCluster).toBe(false);
    expect(client.options).toMatchObject({
      enableOfflineQueue: false,
      commandTimeout: 250,
      socketTimeout: 500,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: false,
      keyPrefix: 'kept:',
    });
  });

  it('turn auto-pipelining on for a server unless the application turns it off', () => {
    const client = createRedisClient({ redis: { lazyConnect: true } }) as Redis;
    clients.push(client);
    expect(client.options.enableAutoPipelining).toBe(true);
  });

  it('apply to every node of a Cluster', () => {
    const client = createRedisClient({
      cluster: {
        nodes: [{ host: '127.0.0.1', port: 1 }],
        options: {
          lazyConnect: true,
          enableOfflineQueue: true,
          enableAutoPipelining: true,
          redisOptions: { db: 0 },
        },
      },
    }) as Cluster;
    clients.push(client);
    expect(client.isCluster).toBe(true);
    expect(client.options.enableOfflineQueue).toBe(false);
    expect(client.options.enableAutoPipelining).toBe(false);
    expect(client.options.redisOptions).toMatchObject({
      commandTimeout: 1000,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    });
  });

  it('refuse a Cluster client the application hands in with auto-pipelining, whose batches do not follow MOVED', async () => {
    const client = createRedisClient({
      cluster: { nodes: [{ host: '127.0.0.1', port: 1 }], options: { lazyConnect: true } },
    }) as Cluster;
    clients.push(client);
    client.options.enableAutoPipelining = true;
    await expect(new RedisIdempotencyStore(client).prepare()).rejects.toThrow(
      /Cluster client without `enableAutoPipelining`/,
    );
  });

  it('are required of a client the application hands in', async () => {
    const client = createRedisClient({ redis: { lazyConnect: true } }) as Redis;
    clients.push(client);
    client.options.enableOfflineQueue = true;
    await expect(new RedisIdempotencyStore(client).prepare()).rejects.toThrow(/fails closed/);
  });
});

describe('the server version check', () => {
  const fail = (message: string) => {
    throw new Error(`unexpected warning: ${message}`);
  };
  /** A ready client whose server reports `version`: only what the check reads. */
  const server = (version: string) =>
    ({
      status: 'ready',
      isCluster: false,
      options: { host: '10.0.0.7', port: 6380 },
      info: () =>
        Promise.resolve(`# Server\r\nredis_version:${version}\r\nredis_mode:standalone\r\n`),
    }) as unknown as Redis;

  it.each(['7.0.0', '7.0.15', '7.2.4', '8.0.1', '10.1.0'])('accepts Redis %s', async (version) => {
    await expect(assertServerVersion(server(version), 1000, fail)).resolves.toBeUndefined();
  });

  it.each(['6.2.14', '6.0.20', '5.0.7'])(
    'refuses Redis %s, whose SET does not take NX and GET together',
    async (version) => {
      await expect(assertServerVersion(server(version), 1000, fail)).rejects.toThrow(
        `needs Redis 7.0 or later; 10.0.0.7:6380 runs ${version}`,
      );
    },
  );

  it('goes on with a warning when a server cannot tell its version, or does not answer', async () => {
    const refused = {
      ...server('7.0.0'),
      info: () =>
        Promise.reject(new Error("NOPERM this user has no permissions to run the 'info' command")),
    } as unknown as Redis;
    const silent = {
      ...server('7.0.0'),
      info: () => Promise.resolve('# Server\r\n'),
    } as unknown as Redis;
    const cluster = {
      isCluster: true,
      nodes: () => [refused, server('7.2.0'), silent],
    } as unknown as Cluster;
    const warnings: string[] = [];
    await assertServerVersion(cluster, 1000, (message) => warnings.push(message));
    expect(warnings).toEqual([
      expect.stringContaining('10.0.0.7:6380 (Error: NOPERM'),
      expect.stringContaining('no redis_version'),
    ]);
  });

  it('still refuses an old primary next to one that cannot tell', async () => {
    const refused = {
      ...server('7.0.0'),
      info: () => Promise.reject(new Error('NOPERM')),
    } as unknown as Redis;
    const cluster = {
      isCluster: true,
      nodes: () => [refused, server('6.2.6')],
    } as unknown as Cluster;
    await expect(assertServerVersion(cluster, 1000, () => undefined)).rejects.toThrow(
      /runs 6\.2\.6/,
    );
  });

  it('checks every primary of a Cluster', async () => {
    const cluster = {
      isCluster: true,
      nodes: (role: string) => (role === 'master' ? [server('7.2.0'), server('6.2.6')] : []),
    } as unknown as Cluster;
    await expect(assertServerVersion(cluster, 1000, fail)).rejects.toThrow(/runs 6\.2\.6/);
  });
});

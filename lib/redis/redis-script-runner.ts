import type { Cluster, Redis } from 'ioredis';
import type { RedisScript } from './redis-scripts';
import type { RedisDurabilityOptions } from './redis-store.options';

/** Replicas did not confirm a write within `durability.timeoutMs`. */
export class RedisReplicationError extends Error {
  constructor(acknowledged: number, durability: RedisDurabilityOptions) {
    super(
      `nestjs-idempotency: ${acknowledged} of ${durability.replicas} Redis replicas confirmed the write within ${durability.timeoutMs} ms.`,
    );
    this.name = 'RedisReplicationError';
  }
}

/** What a script is given besides its one key: strings, numbers, or bytes. */
export type ScriptArgument = string | number | Buffer;

type ScriptCommand = 'evalshaBuffer' | 'evalBuffer';

/**
 * The Buffer-reply variants of EVALSHA and EVAL, which ioredis defines for every command but does
 * not declare in its types.
 */
type ScriptSender<Reply> = Record<
  ScriptCommand,
  (source: string, keys: 1, key: string, ...args: ScriptArgument[]) => Reply
>;

/**
 * Runs a script on one key with EVALSHA, sending its source (EVAL) only when the server has not
 * cached it (after a restart, or on a node that has not seen it yet). Replies come as Buffers.
 * Sent through ioredis's own `evalshaBuffer`, which its auto-pipelining can batch with the other
 * commands of the same event-loop turn.
 *
 * With `durability`, a `WAIT` is pipelined behind the script, so that it runs on the connection
 * that wrote, on the key's own node in a Cluster; its count is checked when `wrote(reply)` says
 * the script changed the key.
 */
export async function runScript(
  client: Redis | Cluster,
  script: RedisScript,
  key: string,
  args: ScriptArgument[],
  durability?: RedisDurabilityOptions,
  wrote: (reply: unknown) => boolean = () => true,
): Promise<unknown> {
  try {
    return await send(client, 'evalshaBuffer', script.sha, key, args, durability, wrote);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) {
      throw error;
    }
    return send(client, 'evalBuffer', script.lua, key, args, durability, wrote);
  }
}

async function send(
  client: Redis | Cluster,
  command: ScriptCommand,
  source: string,
  key: string,
  args: ScriptArgument[],
  durability: RedisDurabilityOptions | undefined,
  wrote: (reply: unknown) => boolean,
): Promise<unknown> {
  if (!durability) {
    return (client as unknown as ScriptSender<Promise<unknown>>)[command](source, 1, key, ...args);
  }
  const pipeline = client.pipeline();
  (pipeline as unknown as ScriptSender<unknown>)[command](source, 1, key, ...args);
  const results = await pipeline.wait(durability.replicas, durability.timeoutMs).exec();
  const [[scriptError, reply], [waitError, acknowledged]] = results as [
    [Error | null, unknown],
    [Error | null, unknown],
  ];
  if (scriptError) {
    throw scriptError;
  }
  if (!wrote(reply)) {
    return reply;
  }
  if (waitError) {
    throw waitError;
  }
  if (typeof acknowledged !== 'number' || acknowledged < durability.replicas) {
    throw new RedisReplicationError(Number(acknowledged), durability);
  }
  return reply;
}

import type { Cluster, Redis } from 'ioredis';
import {
  type BufferCommandName,
  type CommandArgument,
  sendBufferCommand,
  sendThroughMethod,
} from './redis-command-sender';
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
export type ScriptArgument = CommandArgument;

/** One command on one key, its reply as Buffers (`sendBufferCommand`). */
export interface KeyCommand {
  name: BufferCommandName;
  args: readonly CommandArgument[];
}

/**
 * Runs a script on one key with EVALSHA, sending its source (EVAL) only when the server has not
 * cached it (after a restart, or on a node that has not seen it yet). Replies come as Buffers.
 * Sent by `sendBufferCommand`, with the other commands of the same event-loop turn.
 * `durability` and `wrote` as in `runCommand`.
 */
export function runScript(
  client: Redis | Cluster,
  script: RedisScript,
  key: string,
  args: ScriptArgument[],
  durability?: RedisDurabilityOptions,
  wrote?: (reply: unknown) => boolean,
): Promise<unknown> {
  const call = (name: 'evalsha' | 'eval', source: string): KeyCommand => ({
    name,
    args: [source, 1, key, ...args],
  });
  // Chained rather than awaited: every completion and release runs this, and each async layer is
  // another promise (and, with AsyncLocalStorage on, another hook call).
  return runCommand(client, call('evalsha', script.sha), durability, wrote).catch(
    (error: unknown) => {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) {
        throw error;
      }
      return runCommand(client, call('eval', script.lua), durability, wrote);
    },
  );
}

/**
 * Sends one command on one key. With `durability`, a `WAIT` is pipelined behind it, so that it
 * runs on the connection that wrote, on the key's own node in a Cluster; its count is checked
 * when `wrote(reply)` says the command changed the key.
 */
export function runCommand(
  client: Redis | Cluster,
  command: KeyCommand,
  durability?: RedisDurabilityOptions,
  wrote: (reply: unknown) => boolean = () => true,
): Promise<unknown> {
  if (durability) {
    return confirmedByReplicas(client, command, durability, wrote);
  }
  try {
    return sendBufferCommand(client, command.name, command.args);
  } catch (error) {
    // Callers chain on the promise: a command that throws while being built must reject it.
    return Promise.reject(error);
  }
}

async function confirmedByReplicas(
  client: Redis | Cluster,
  command: KeyCommand,
  durability: RedisDurabilityOptions,
  wrote: (reply: unknown) => boolean,
): Promise<unknown> {
  const pipeline = client.pipeline();
  sendThroughMethod(pipeline, command.name, command.args);
  const results = await pipeline.wait(durability.replicas, durability.timeoutMs).exec();
  const [[commandError, reply], [waitError, acknowledged]] = results as [
    [Error | null, unknown],
    [Error | null, unknown],
  ];
  if (commandError) {
    throw commandError;
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

import { type Cluster, Command, Redis } from 'ioredis';

/** A command's arguments: strings, numbers, or bytes. */
export type CommandArgument = string | number | Buffer;

/** The commands the store sends, each on one key, with Buffer replies (integers stay numbers). */
export type BufferCommandName = 'set' | 'evalsha' | 'eval' | 'getrange' | 'del';

/**
 * ioredis's Buffer-reply method for `name` on a client or a pipeline (`setBuffer`, ...), which
 * it defines for every command but does not declare for all of them.
 */
export function sendThroughMethod(
  target: object,
  name: BufferCommandName,
  args: readonly CommandArgument[],
): unknown {
  const method = (target as Record<string, (...args: CommandArgument[]) => unknown>)[
    `${name}Buffer`
  ];
  return method.apply(target, args as CommandArgument[]);
}

/** Connections whose writes are held until the end of this turn of the event loop. */
const corked = new WeakSet<NodeJS.WritableStream>();

function uncork(stream: NodeJS.WritableStream & { uncork(): void }): void {
  corked.delete(stream);
  stream.uncork();
}

/**
 * Sends one command whose reply comes as Buffers. On a ready standalone client the command is
 * written to the connection directly, and the writes of one turn of the event loop leave in one
 * system call (the socket is corked until `setImmediate`): the batching that ioredis's
 * auto-pipelining gives, without its pipeline objects and callbacks, which cost about as much
 * CPU as the command itself. The client's own rules still apply, as `sendCommand` is its own:
 * a command on a connection that is not writable fails at once (no offline queue), times out
 * after `commandTimeout`, and (with `autoResendUnfulfilledCommands: false`, as
 * `createRedisClient()` sets it) is not sent again after a reconnect.
 *
 * Anything else (a Cluster, which routes by slot; a client not ready; an ioredis other than the
 * one this module loads) goes through the client's own method for the command (`setBuffer`,
 * `evalshaBuffer`, ...). Not `callBuffer`: with auto-pipelining on, ioredis 5 drops its command
 * name and sends the key as one.
 */
export function sendBufferCommand(
  client: Redis | Cluster,
  name: BufferCommandName,
  args: readonly CommandArgument[],
): Promise<unknown> {
  if (!(client instanceof Redis) || client.status !== 'ready') {
    return sendThroughMethod(client, name, args) as Promise<unknown>;
  }
  const { stream } = client;
  if (!corked.has(stream)) {
    corked.add(stream);
    stream.cork();
    // After the poll phase, as ioredis's auto-pipelining does: the requests that arrived in one
    // turn, each in its own I/O callback, share one write.
    setImmediate(uncork, stream);
  }
  const { keyPrefix, showFriendlyErrorStack } = client.options;
  const command = new Command(name, args as CommandArgument[], {
    replyEncoding: null,
    keyPrefix,
    errorStack: showFriendlyErrorStack ? new Error() : undefined,
  });
  return client.sendCommand(command) as Promise<unknown>;
}

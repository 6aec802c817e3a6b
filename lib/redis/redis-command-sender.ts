import { type Cluster, Command, Redis } from 'ioredis';

/** A command's arguments: strings, numbers, or bytes. */
export type CommandArgument = string | number | Buffer;

/** Connections whose writes are held until the end of this turn of the event loop. */
const corked = new WeakSet<NodeJS.WritableStream>();

function uncork(stream: NodeJS.WritableStream & { uncork(): void }): void {
  corked.delete(stream);
  stream.uncork();
}

/**
 * Sends one command whose reply comes as Buffers. On a ready standalone client the command is
 * written to the connection directly, and the writes of one turn of the event loop leave in one
 * system call (the socket is corked until the next tick): the batching that ioredis's
 * auto-pipelining gives, without its pipeline objects and callbacks, which cost about as much
 * CPU as the command itself. The client's own rules still apply, as `sendCommand` is its own:
 * a command on a connection that is not writable fails at once (no offline queue), times out
 * after `commandTimeout`, and is never sent again after a reconnect.
 *
 * Anything else (a Cluster, which routes by slot; a client not ready; an ioredis other than the
 * one this module loads) goes through the client's `callBuffer`.
 */
export function sendBufferCommand(
  client: Redis | Cluster,
  name: string,
  args: readonly CommandArgument[],
): Promise<unknown> {
  if (!(client instanceof Redis) || client.status !== 'ready') {
    return client.callBuffer(name, ...args);
  }
  const { stream } = client;
  if (!corked.has(stream)) {
    corked.add(stream);
    stream.cork();
    process.nextTick(uncork, stream);
  }
  const { keyPrefix, showFriendlyErrorStack } = client.options;
  const command = new Command(name, args as CommandArgument[], {
    replyEncoding: null,
    keyPrefix,
    errorStack: showFriendlyErrorStack ? new Error() : undefined,
  });
  return client.sendCommand(command) as Promise<unknown>;
}

import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';

/** How a {@link JetStreamServer} connects, what it consumes, and how it settles messages. */
export interface JetStreamServerOptions {
  /**
   * The NATS servers to connect to, when no `connection` is given. The server opens this
   * connection and drains it on close. Default: `'nats://127.0.0.1:4222'`.
   */
  servers?: string | string[];
  /**
   * An open connection the application owns. The server uses it and leaves it open on close.
   * Default: none (the server connects to `servers`).
   */
  connection?: NatsConnection;
  /** The name of the JetStream stream that holds the messages. Required. */
  stream: string;
  /**
   * The stream's subjects, used only when the server creates the stream (`ensure`).
   * Default: the patterns of the application's `@EventPattern()`/`@MessagePattern()` handlers.
   */
  subjects?: string[];
  /**
   * The prefix of the durable consumers' names: one pull consumer per pattern, named
   * `<durable>_<pattern>_<hash>` with `.`, `*` and `>` replaced by `_` (the hash of the pattern
   * keeps `orders.*` and `orders.>` apart). Every instance of an app given
   * the same prefix shares the consumers, and so the work. Default: `'nestjs'`.
   */
  durable?: string;
  /**
   * How long JetStream waits for a settlement before it delivers a message again, in
   * milliseconds. While a message is handled the server signals progress every `ackWaitMs / 2`,
   * so a long handler (or a duplicate waiting for it) is not delivered again meanwhile.
   * Applied to the consumers it creates or updates (`ensure`). Default: `30_000`.
   */
  ackWaitMs?: number;
  /**
   * How many times JetStream delivers a message before it gives up on it; a retry of the last
   * delivery is dead-lettered instead. `-1`: no limit. Applied with `ensure`. A limit must outlast
   * the routes' leases: a redelivery of a message whose consumer died waits for the lease to end,
   * and is delivered again meanwhile. Default: `-1`.
   */
  maxDeliver?: number;
  /**
   * How long a message whose handler failed waits before its next delivery, in milliseconds; it
   * doubles with each delivery, up to `maxNakDelayMs`. Default: `1_000`.
   */
  nakDelayMs?: number;
  /** The longest wait before a failed message's next delivery, in milliseconds. Default: `30_000`. */
  maxNakDelayMs?: number;
  /**
   * How many messages one server handles at once, over all its patterns; also the size of each
   * consumer's pull batch. Default: `16`.
   */
  maxMessages?: number;
  /**
   * Whether the server creates the stream when it is missing (with `subjects`, and the server's
   * default limits: set the stream's `duplicate_window` yourself if it matters) and creates or
   * updates the durable consumers. With `false` they must exist. Default: `true`.
   */
  ensure?: boolean;
  /**
   * A subject where a dead-lettered message's data and headers are published (through JetStream,
   * so a stream must capture the subject) before it is terminated. The copy carries
   * `Nats-Dead-Letter-Stream`, `-Subject` and `-Sequence` headers. When that publish fails the
   * message is delivered again instead. Default: none (terminated only; see the
   * `MSG_TERMINATED` advisory).
   */
  deadLetterSubject?: string;
}

/** The defaults of {@link JetStreamServerOptions}. */
export const JETSTREAM_SERVER_DEFAULTS = {
  servers: 'nats://127.0.0.1:4222',
  durable: 'nestjs',
  ackWaitMs: 30_000,
  maxDeliver: -1,
  nakDelayMs: 1_000,
  maxNakDelayMs: 30_000,
  maxMessages: 16,
  ensure: true,
} as const;

/** The options with their defaults in place. */
export type ResolvedJetStreamServerOptions = JetStreamServerOptions &
  Required<Pick<JetStreamServerOptions, keyof typeof JETSTREAM_SERVER_DEFAULTS>>;

export function resolveJetStreamServerOptions(
  options: JetStreamServerOptions,
): ResolvedJetStreamServerOptions {
  const defined = Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  );
  const resolved = { ...JETSTREAM_SERVER_DEFAULTS, ...defined } as ResolvedJetStreamServerOptions;
  if (typeof resolved.stream !== 'string' || resolved.stream === '') {
    throw new Error('JetStreamServer: `stream` must name the JetStream stream to consume.');
  }
  for (const name of ['ackWaitMs', 'nakDelayMs', 'maxNakDelayMs', 'maxMessages'] as const) {
    if (!Number.isInteger(resolved[name]) || resolved[name] < 1) {
      throw new Error(
        `JetStreamServer: \`${name}\` must be a positive integer, got ${resolved[name]}.`,
      );
    }
  }
  if (
    !Number.isInteger(resolved.maxDeliver) ||
    (resolved.maxDeliver < 1 && resolved.maxDeliver !== -1)
  ) {
    throw new Error(
      `JetStreamServer: \`maxDeliver\` must be a positive integer or -1 (no limit), got ${resolved.maxDeliver}.`,
    );
  }
  return resolved;
}

/**
 * The durable consumer's name for `pattern`: names may not hold `.`, `*`, `>` or whitespace, so
 * those become `_`, and a hash of the pattern keeps two patterns (`orders.*`, `orders.>`) apart.
 */
export function durableName(prefix: string, pattern: string): string {
  const hashed = createHash('sha256').update(pattern).digest('hex').slice(0, 8);
  return `${prefix}_${pattern.replace(/[.*>\s]/g, '_')}_${hashed}`;
}

import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { ResolvedJetStreamServerOptions } from './jetstream-server.options';

/** Whether JetStream answered that the stream or consumer asked about does not exist. */
function isNotFound(error: unknown): boolean {
  return /not found/i.test(String((error as Error | null)?.message ?? error));
}

/**
 * Creates the stream when it is missing. An existing stream is left as it is: its subjects,
 * limits and duplicate window are the application's.
 */
export async function ensureStream(
  manager: JetStreamManager,
  options: ResolvedJetStreamServerOptions,
  patterns: string[],
): Promise<void> {
  try {
    await manager.streams.info(options.stream);
  } catch (error) {
    if (!isNotFound(error)) {
      throw error;
    }
    await manager.streams.add({ name: options.stream, subjects: options.subjects ?? patterns });
  }
}

/** Creates the durable pull consumer of `pattern`, or brings its ack wait and delivery limit up to date. */
export async function ensureConsumer(
  manager: JetStreamManager,
  options: ResolvedJetStreamServerOptions,
  durable: string,
  pattern: string,
): Promise<void> {
  const settings = {
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: options.maxDeliver,
  };
  try {
    await manager.consumers.info(options.stream, durable);
  } catch (error) {
    if (!isNotFound(error)) {
      throw error;
    }
    await manager.consumers.add(options.stream, {
      ...settings,
      durable_name: durable,
      filter_subject: pattern,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    return;
  }
  await manager.consumers.update(options.stream, durable, settings);
}

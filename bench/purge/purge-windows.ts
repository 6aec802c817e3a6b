import { setTimeout as sleep } from 'node:timers/promises';
import type { PostgresIdempotencyStore } from '../../lib/postgres/typeorm/postgres-idempotency.store';

/** Server counters read at the edges of a window. */
export interface ServerMark {
  /** WAL position, in bytes. */
  walBytes: number;
  /** CPU of the whole PostgreSQL server so far, in ms; `null` when it cannot be seen. */
  postgresCpuMs: number | null;
}

/** A stretch of the run with purge batches running back to back, or without any. */
export interface PurgeWindow {
  purging: boolean;
  /** `performance.now()` milliseconds. */
  startMs: number;
  endMs: number;
  /** WAL written by every session in the window. */
  walBytes: number;
  postgresCpuMs: number | null;
}

/** One `purgeExpired` call. */
export interface PurgeBatch {
  startMs: number;
  endMs: number;
  deleted: number;
}

/** What working off one backlog took. */
export interface PurgeRun {
  windows: PurgeWindow[];
  batches: PurgeBatch[];
}

/**
 * Works off the expired backlog through `store.purgeExpired(batchSize)`, batch after batch as the
 * library's purger runs them, in windows of about `sliceMs`, each followed by a window of the same
 * length without purge. The claims running throughout are then compared between the two kinds of
 * window, which interleave and so share the drift of a busy machine (checkpoints, other load).
 * Stops once a batch deletes nothing and no expired row is left.
 */
export async function purgeInWindows(options: {
  store: PostgresIdempotencyStore;
  batchSize: number;
  sliceMs: number;
  mark: () => Promise<ServerMark>;
  backlogLeft: () => Promise<boolean>;
  timeoutMs: number;
}): Promise<PurgeRun> {
  const { store, batchSize, sliceMs, mark, backlogLeft } = options;
  const deadline = performance.now() + options.timeoutMs;
  const windows: PurgeWindow[] = [];
  const batches: PurgeBatch[] = [];
  let done = false;
  while (!done) {
    if (performance.now() > deadline) {
      throw new Error(`The backlog was not gone after ${options.timeoutMs} ms.`);
    }
    const purging = await timedWindow(true, mark, async () => {
      const started = performance.now();
      while (!done && performance.now() - started < sliceMs) {
        const startMs = performance.now();
        const deleted = await store.purgeExpired(batchSize);
        batches.push({ startMs, endMs: performance.now(), deleted });
        if (deleted === 0) {
          done = !(await backlogLeft());
          // Rows a claim holds are skipped (SKIP LOCKED): look again once it has let go.
          if (!done) {
            await sleep(10);
          }
        }
      }
    });
    windows.push(purging);
    windows.push(await timedWindow(false, mark, () => sleep(purging.endMs - purging.startMs)));
  }
  return { windows, batches };
}

async function timedWindow(
  purging: boolean,
  mark: () => Promise<ServerMark>,
  body: () => Promise<unknown>,
): Promise<PurgeWindow> {
  const before = await mark();
  const startMs = performance.now();
  await body();
  const endMs = performance.now();
  const after = await mark();
  return {
    purging,
    startMs,
    endMs,
    walBytes: after.walBytes - before.walBytes,
    postgresCpuMs:
      after.postgresCpuMs === null || before.postgresCpuMs === null
        ? null
        : after.postgresCpuMs - before.postgresCpuMs,
  };
}

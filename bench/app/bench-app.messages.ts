/** Messages between the runner and a bench app process, over the IPC channel of `fork()`. */

/** Sent by the process once every application listens: their ports, by name. */
export interface ReadyMessage {
  type: 'ready';
  ports: Record<string, number>;
}

/** Asked by the runner around every measured run. */
export interface StatsRequest {
  type: 'stats';
  id: number;
}

/** The process's side of a run's cost: counters since it started. */
export interface StatsMessage {
  type: 'stats';
  id: number;
  /** Statements the process sent to PostgreSQL (every `pg` `Client#query` call). */
  queries: number;
  /** `process.cpuUsage()`, in microseconds. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** Time spent in garbage collection pauses, in milliseconds. */
  gcMs: number;
}

export type AppMessage = ReadyMessage | StatsMessage;

export function isStatsRequest(message: unknown): message is StatsRequest {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'stats' &&
    typeof (message as { id?: unknown }).id === 'number'
  );
}

export function isAppMessage(message: unknown): message is AppMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return type === 'ready' || type === 'stats';
}

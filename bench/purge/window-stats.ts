import type { ClaimKind, ClaimSample } from './claim-workers';
import { type LatencySummary, summarizeLatency } from './latency';
import type { PurgeWindow } from './purge-windows';
import type { WaitObservation } from './wait-sampler';

/** The claims and the server over all windows of one kind (with purge, or without). */
export interface WindowSideStats {
  windows: number;
  seconds: number;
  /** Claims of new and of live keys (`new` + `replay`) started in these windows, per second. */
  claimsPerSecond: number;
  /** Claim latency of `new` and `replay` together, then of each kind. */
  claimMs: LatencySummary;
  latencyMs: Record<ClaimKind, LatencySummary>;
  /** Calls that got another result than expected, or failed. Must both be 0. */
  unexpected: number;
  errors: number;
  /** WAL written by every session, in bytes per second. */
  walBytesPerSecond: number;
  /** Cores the PostgreSQL server kept busy on average; `null` when not visible. */
  postgresCores: number | null;
  waits: WaitStats;
}

/** Sampled states of the claim workers' backends while they ran a statement. */
export interface WaitStats {
  /** Backend-samples of claim workers. */
  samples: number;
  /** By wait (`type:event`, `CPU` when none), most frequent first. */
  byWait: Record<string, number>;
  /** Claim-worker samples waiting on a heavyweight lock held by the purge. Must be 0. */
  claimsBlockedByPurge: number;
  /** The same for the front probe (an expired key the purge may be deleting right then). */
  frontBlockedByPurge: number;
}

/**
 * Splits the samples between the windows with and without purge by their start (a call started
 * in a window without purge that ran into the next one is left out: it may have met a batch).
 */
export function windowStats(
  windows: readonly PurgeWindow[],
  samples: readonly ClaimSample[],
  observations: readonly WaitObservation[],
): { withPurge: WindowSideStats; withoutPurge: WindowSideStats; leftOut: number } {
  const sides = [true, false].map((purging) => ({
    purging,
    windows: windows.filter((window) => window.purging === purging),
    samples: [] as ClaimSample[],
    observations: [] as WaitObservation[],
  }));
  let leftOut = 0;
  for (const sample of samples) {
    const window = windowAt(windows, sample.startMs);
    if (!window) {
      continue; // warm-up, or after the last window
    }
    if (!window.purging && sample.endMs > window.endMs) {
      leftOut++;
      continue;
    }
    sides[window.purging ? 0 : 1].samples.push(sample);
  }
  for (const observation of observations) {
    const window = windowAt(windows, observation.atMs);
    if (window) {
      sides[window.purging ? 0 : 1].observations.push(observation);
    }
  }
  const [withPurge, withoutPurge] = sides.map((side) =>
    sideStats(side.windows, side.samples, side.observations),
  );
  return { withPurge, withoutPurge, leftOut };
}

function sideStats(
  windows: readonly PurgeWindow[],
  samples: readonly ClaimSample[],
  observations: readonly WaitObservation[],
): WindowSideStats {
  const seconds = windows.reduce((sum, w) => sum + (w.endMs - w.startMs), 0) / 1000;
  const ms = (kinds: readonly ClaimKind[]) =>
    samples.filter((s) => kinds.includes(s.kind)).map((s) => s.endMs - s.startMs);
  const claims = ms(['new', 'replay']);
  const cpu = windows.map((w) => w.postgresCpuMs);
  return {
    windows: windows.length,
    seconds,
    claimsPerSecond: claims.length / seconds,
    claimMs: summarizeLatency(claims),
    latencyMs: {
      new: summarizeLatency(ms(['new'])),
      replay: summarizeLatency(ms(['replay'])),
      complete: summarizeLatency(ms(['complete'])),
      front: summarizeLatency(ms(['front'])),
    },
    unexpected: samples.filter((s) => s.result === 'unexpected').length,
    errors: samples.filter((s) => s.result === 'error').length,
    walBytesPerSecond: windows.reduce((sum, w) => sum + w.walBytes, 0) / seconds,
    postgresCores: cpu.includes(null)
      ? null
      : (cpu as number[]).reduce((sum, value) => sum + value, 0) / 1000 / seconds,
    waits: waitStats(observations),
  };
}

function waitStats(observations: readonly WaitObservation[]): WaitStats {
  const claims = observations.filter((o) => o.backend === 'claim');
  const byWait: Record<string, number> = {};
  for (const observation of claims) {
    const wait = observation.wait ?? 'CPU';
    byWait[wait] = (byWait[wait] ?? 0) + 1;
  }
  return {
    samples: claims.length,
    byWait: Object.fromEntries(Object.entries(byWait).sort((a, b) => b[1] - a[1])),
    claimsBlockedByPurge: claims.filter((o) => o.blockedByPurge).length,
    frontBlockedByPurge: observations.filter((o) => o.backend === 'front' && o.blockedByPurge)
      .length,
  };
}

function windowAt(windows: readonly PurgeWindow[], atMs: number): PurgeWindow | undefined {
  return windows.find((window) => window.startMs <= atMs && atMs < window.endMs);
}

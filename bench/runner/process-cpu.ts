import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Reads a CPU total, in milliseconds, of a process or a group of processes. */
export type ProcessCpu = () => number | null;

/** Clock ticks per second of /proc's CPU times. */
const TICKS_PER_SECOND = clockTicks();

interface ProcStat {
  ppid: number;
  /** utime + stime, in ticks. */
  own: number;
  /** cutime + cstime: reaped children, in ticks. */
  children: number;
}

/**
 * CPU of a whole PostgreSQL server, from /proc: its postmaster (with the backends it has already
 * reaped) and every live child (backends, checkpointer, WAL writer, ...). Found through one
 * backend's pid; `null` when that process is not visible here (a remote or containerised server).
 */
export function postgresCpuMs(backendPid: number): ProcessCpu | null {
  const backend = readStat(backendPid);
  const postmaster = backend ? backend.ppid : -1;
  if (!backend || processName(postmaster) !== 'postgres') {
    return null;
  }
  return () => {
    const root = readStat(postmaster);
    if (!root) {
      return null;
    }
    let ticks = root.own + root.children;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) {
        continue;
      }
      const stat = readStat(Number(entry));
      if (stat?.ppid === postmaster) {
        ticks += stat.own;
      }
    }
    return (ticks * 1000) / TICKS_PER_SECOND;
  };
}

/** CPU of one process, from /proc (a Redis server started by the bench); `null` once it is gone. */
export function processCpuMs(pid: number): ProcessCpu {
  return () => {
    const stat = readStat(pid);
    return stat ? (stat.own * 1000) / TICKS_PER_SECOND : null;
  };
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is parenthesised and may hold spaces: split after it.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      ppid: Number(fields[1]),
      own: Number(fields[11]) + Number(fields[12]),
      children: Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return null;
  }
}

function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

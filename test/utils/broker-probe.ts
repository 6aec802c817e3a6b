import { spawnSync } from 'node:child_process';

/** Whether something accepts TCP connections at the URL's host and port (one short probe). */
function reachable(url: string, defaultPort: number): boolean {
  const { hostname, port } = new URL(url);
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').connect(${Number(port) || defaultPort}, ${JSON.stringify(hostname)});
       s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));
       setTimeout(() => process.exit(1), 2000);`,
    ],
    { timeout: 5000 },
  );
  return probe.status === 0;
}

/**
 * `describe` when the broker at `url` answers, `describe.skip` when it does not; under CI=true an
 * unreachable broker throws `missing` instead, failing the run. With `report`, a skip prints
 * `missing` once (one test file per broker reports, so that a run says it once).
 */
export function describeWithBroker(
  url: string,
  defaultPort: number,
  missing: string,
  report: boolean,
): typeof describe | typeof describe.skip {
  if (reachable(url, defaultPort)) {
    return describe;
  }
  if (process.env.CI === 'true') {
    throw new Error(missing);
  }
  if (report) {
    process.stderr.write(`${missing}\n`);
  }
  return describe.skip;
}

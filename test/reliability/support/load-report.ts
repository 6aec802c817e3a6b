import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROFILE } from '../profile';

/** Where the reports of the reliability suite are written (outside the repository). */
export const REPORT_DIR = join(tmpdir(), 'nestjs-idempotency-reliability');

/**
 * Prints a scenario's figures compactly and writes them as JSON to
 * `<tmpdir>/nestjs-idempotency-reliability/<scenario>-<profile>.json`; returns the file's path.
 */
export function writeReport(scenario: string, report: Record<string, unknown>): string {
  mkdirSync(REPORT_DIR, { recursive: true });
  const path = join(REPORT_DIR, `${scenario}-${PROFILE}.json`);
  const document = { scenario, profile: PROFILE, finishedAt: new Date().toISOString(), ...report };
  writeFileSync(path, `${JSON.stringify(document, null, 2)}\n`);
  const lines = Object.entries(report).map(
    ([name, value]) => `  ${name}: ${JSON.stringify(value)}`,
  );
  console.log(`[reliability] ${scenario} (${PROFILE})\n${lines.join('\n')}\n  -> ${path}`);
  return path;
}

// Generates the example's Prisma client into examples/prisma/generated/ (not committed), for the
// type-check and the tests: `npm run prisma:generate`, which `pretypecheck` and `pretest` run.
//
// An app runs `prisma generate` itself. Here it must also work offline: the CLI downloads its
// schema engine before any command unless PRISMA_SCHEMA_ENGINE_BINARY names an existing file, and
// `generate` never runs that engine (it reads the schema with the WebAssembly build it ships), so
// any existing file will do: this Node binary. CHECKPOINT_DISABLE skips its check for updates.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { URL, fileURLToPath } from 'node:url';
import process from 'node:process';

const cli = createRequire(import.meta.url).resolve('prisma/build/index.js');
execFileSync(
  process.execPath,
  [cli, 'generate', '--schema', fileURLToPath(new URL('schema.prisma', import.meta.url))],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
      CHECKPOINT_DISABLE: '1',
    },
  },
);

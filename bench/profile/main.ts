import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/*
 * Where an app process's CPU went, from a V8 CPU profile (`npm run bench -- --cpu-prof=DIR`):
 * self time grouped into the parts of a request (the module, each store client and the socket
 * writes it makes, the ORM, the HTTP platform, Nest, garbage collection), then the module's own
 * functions. With --requests=N, each part is also given per request.
 *
 *   npm run bench:profile -- DIR/CPU.*.cpuprofile [--requests=N]
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Packages by the part of a request they serve; the first match wins. */
const PARTS: [part: string, pattern: RegExp][] = [
  ['PostgreSQL client (pg)', /\/node_modules\/(pg|pg-pool|pg-protocol|pg-types|postgres-[a-z]+)\//],
  ['Redis client (ioredis)', /\/node_modules\/(ioredis|redis-parser|@ioredis\/[^/]+|denque)\//],
  ['TypeORM', /\/node_modules\/(typeorm|@nestjs\/typeorm)\//],
  ['Redis peer package', /\/node_modules\/(@node-idempotency\/[^/]+|@redis\/[^/]+)\//],
  ['rxjs', /\/node_modules\/rxjs\//],
  ['Nest', /\/node_modules\/@nestjs\/(core|common)\//],
  [
    'HTTP platform (Express or Fastify and their parsers)',
    /\/node_modules\/(@nestjs\/platform-[a-z]+|express|router|body-parser|raw-body|type-is|on-finished|content-type|parseurl|etag|send|finalhandler|fastify|@fastify\/[^/]+|find-my-way|light-my-request|avvio)\//,
  ],
  ['the module (lib/)', /^(?!.*\/node_modules\/).*\/lib\/.*\.js$/],
  ['the bench app', /\/bench\/app\//],
  [
    'Node: HTTP, streams, events',
    /^node:(_http_|internal\/streams|events|stream|net|internal\/http)/,
  ],
  ['Node: timers, promises, ticks', /^node:(timers|internal\/timers|internal\/process)/],
  ['Node: crypto', /^node:(crypto|internal\/crypto)/],
];

/** Native frames that are the socket writes of whoever called them. */
const SOCKET_WRITES = new Set(['writev', 'writeUtf8String', 'writeBuffer', 'writeLatin1String']);

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((arg) => !arg.startsWith('--'));
  const requests = Number(args.find((arg) => arg.startsWith('--requests='))?.split('=')[1]);
  if (!file) {
    throw new Error('Usage: npm run bench:profile -- FILE.cpuprofile [--requests=N]');
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      parents.set(child, node.id);
    }
  }
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i: a sample stands for the interval after it.
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  });

  /** The part a frame belongs to; a native frame takes its nearest JavaScript caller's. */
  const partOf = (id: number): string => {
    const { functionName, url } = nodes.get(id)!.callFrame;
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(garbage collector)') return 'garbage collection';
    if (functionName === '(program)') return 'V8 and native (unattributed)';
    const own = PARTS.find(([, pattern]) => pattern.test(url))?.[0];
    if (own) return own;
    if (url === '' && SOCKET_WRITES.has(functionName)) {
      for (let up = parents.get(id); up !== undefined; up = parents.get(up)) {
        const caller = PARTS.find(([, pattern]) => pattern.test(nodes.get(up)!.callFrame.url));
        if (caller && caller[0].startsWith('Node:') === false) {
          return `socket writes of ${caller[0]}`;
        }
      }
      return 'socket writes (other)';
    }
    if (url === '') {
      const parent = parents.get(id);
      return parent === undefined ? 'other' : partOf(parent);
    }
    return 'other';
  };

  const parts = new Map<string, number>();
  const moduleFunctions = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const part = partOf(id);
    parts.set(part, (parts.get(part) ?? 0) + us);
    if (part === 'the module (lib/)') {
      const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
      const where = `${functionName || '(anonymous)'} ${url.slice(url.lastIndexOf('/lib/') + 1)}:${lineNumber + 1}`;
      moduleFunctions.set(where, (moduleFunctions.get(where) ?? 0) + us);
    }
  }
  const busyUs = [...parts]
    .filter(([part]) => part !== 'idle')
    .reduce((sum, [, us]) => sum + us, 0);
  const line = (label: string, us: number) =>
    `  ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms` +
    (requests > 0 ? `  ${(us / requests).toFixed(1).padStart(7)} us/request` : '') +
    `  ${label}`;

  console.log(`${basename(file)}: ${(busyUs / 1000).toFixed(0)} ms busy, by part of a request:`);
  for (const [part, us] of [...parts].sort((a, b) => b[1] - a[1])) {
    if (part !== 'idle') console.log(line(part, us));
  }
  console.log("The module's own functions (self time):");
  for (const [where, us] of [...moduleFunctions].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(line(where, us));
  }
}

main();

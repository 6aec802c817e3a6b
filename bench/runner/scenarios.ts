/** Which bench application serves a scenario (all live in one process). */
export type AppName =
  'main' | 'global' | 'pass' | 'full' | 'part' | 'pool' | 'cls' | 'redis' | 'peer';

/** The apps whose keys are on the bench's Redis server: ours on `redisStore()`, and the peer's. */
export const REDIS_APPS: readonly AppName[] = ['redis', 'peer'];

/** How a scenario chooses its keys (see keys.ts). */
export type KeyMode = 'new' | 'replay' | 'hot';

/** A goal from the issue, judged on the median ratio of a scenario's rounds. */
export interface Target {
  /** What the ratio is taken against: the baseline (a), or another scenario of the same round. */
  against: string;
  /**
   * What is compared: requests per second (the default), or the app process's CPU per request,
   * where a lower ratio is better.
   */
  measure?: 'throughput' | 'app-cpu';
  /** Lowest acceptable ratio of throughput; highest acceptable ratio of app CPU. */
  bound: number;
  /** How the issue says it. */
  text: string;
}

export interface Scenario {
  id: string;
  /** Its letter in the issue. */
  item: string;
  title: string;
  app: AppName;
  path: string;
  keys: KeyMode;
  targets: Target[];
}

/** The id of the baseline every ratio refers to. */
export const BASELINE = 'plain';

const vsBaseline = (min: number, text: string): Target => ({
  against: BASELINE,
  bound: min,
  text,
});
/** The app process's CPU per request against the baseline's: at most `max` times it. */
const appCpuVsBaseline = (max: number): Target => ({
  against: BASELINE,
  measure: 'app-cpu',
  bound: max,
  text: `app CPU <= ${max.toFixed(2)}x (a)`,
});
/** A scenario against its twin on another table or store, in the same round. */
const vsEmpty = (scenario: string): Target => ({
  against: scenario,
  bound: 0.9,
  text: `within 10% of ${scenario}`,
});

/**
 * A partitioned-table scenario against its single-table twin, at the ratio docs/partitioning.md
 * predicted from SQL alone (4 daily partitions): HTTP and Nest add the same work to both, so a
 * request's ratio should land at or above it, and one below it is worse than the design promised.
 */
const vsSingleTable = (scenario: string, min: number): Target => ({
  against: scenario,
  bound: min,
  text: `>= ${min.toFixed(2)}x ${scenario}`,
});

/** Ours against the peer package's twin scenario, in the same round: at least as fast. */
const vsPeer = (scenario: string): Target => ({
  against: scenario,
  bound: 1,
  text: `>= 1.00x ${scenario}`,
});

/**
 * Every scenario of a run. The `-1m` ones run against the database whose idempotency table was
 * pre-filled, the `-part` ones against a table partitioned by expiry; both are interleaved with
 * their single-table twins, so the two are compared within a round. The `redis` ones put the
 * lease route's keys on a Redis server the bench starts, and the `peer-redis` ones run the same
 * route on `@node-idempotency/nestjs` with its Redis adapter, on the same server.
 */
export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'plain',
    item: 'a',
    title: 'no idempotency',
    app: 'main',
    path: '/plain',
    keys: 'new',
    targets: [],
  },
  {
    id: 'plain-pass',
    item: 'g0',
    title: "a global interceptor that does nothing (Nest's own cost)",
    app: 'pass',
    path: '/plain-global',
    keys: 'new',
    targets: [],
  },
  {
    id: 'plain-global',
    item: 'g',
    title: 'global interceptor, undecorated route',
    app: 'global',
    path: '/plain-global',
    keys: 'new',
    targets: [
      vsBaseline(0.98, 'within 2% of (a)'),
      { against: 'plain-pass', bound: 0.98, text: 'within 2% of (g0)' },
    ],
  },
  {
    id: 'lease-new',
    item: 'b',
    title: 'lease mode, new keys',
    app: 'main',
    path: '/lease',
    keys: 'new',
    targets: [vsBaseline(0.55, '>= 0.55x (a)')],
  },
  {
    id: 'tx-new',
    item: 'c',
    title: 'transactional mode, new keys',
    app: 'main',
    path: '/tx',
    keys: 'new',
    targets: [vsBaseline(0.65, '>= 0.65x (a)')],
  },
  {
    id: 'replay-lease',
    item: 'd',
    title: 'replay of known keys, lease route',
    app: 'main',
    path: '/lease',
    keys: 'replay',
    targets: [vsBaseline(1.8, '>= 1.80x (a)'), appCpuVsBaseline(0.65)],
  },
  {
    id: 'replay-tx',
    item: 'd',
    title: 'replay of known keys, transactional route',
    app: 'main',
    path: '/tx',
    keys: 'replay',
    targets: [vsBaseline(1.6, '>= 1.60x (a)')],
  },
  {
    id: 'hot-lease',
    item: 'e',
    title: 'concurrent duplicates of hot keys, lease (409)',
    app: 'main',
    path: '/lease',
    keys: 'hot',
    targets: [],
  },
  {
    id: 'hot-tx',
    item: 'e',
    title: 'concurrent duplicates of hot keys, transactional (wait)',
    app: 'main',
    path: '/tx',
    keys: 'hot',
    targets: [],
  },
  {
    id: 'lease-new-1m',
    item: 'f',
    title: 'lease mode, new keys, pre-filled table',
    app: 'full',
    path: '/lease',
    keys: 'new',
    targets: [vsEmpty('lease-new')],
  },
  {
    id: 'tx-new-1m',
    item: 'f',
    title: 'transactional mode, new keys, pre-filled table',
    app: 'full',
    path: '/tx',
    keys: 'new',
    targets: [vsEmpty('tx-new')],
  },
  {
    id: 'replay-lease-1m',
    item: 'f',
    title: 'replay, lease route, pre-filled table',
    app: 'full',
    path: '/lease',
    keys: 'replay',
    targets: [vsEmpty('replay-lease')],
  },
  {
    id: 'replay-tx-1m',
    item: 'f',
    title: 'replay, transactional route, pre-filled table',
    app: 'full',
    path: '/tx',
    keys: 'replay',
    targets: [vsEmpty('replay-tx')],
  },
  {
    id: 'lease-new-part',
    item: 'p',
    title: 'lease mode, new keys, partitioned table',
    app: 'part',
    path: '/lease',
    keys: 'new',
    targets: [vsSingleTable('lease-new', 0.8)],
  },
  {
    id: 'tx-new-part',
    item: 'p',
    title: 'transactional mode, new keys, partitioned table',
    app: 'part',
    path: '/tx',
    keys: 'new',
    targets: [vsSingleTable('tx-new', 0.8)],
  },
  {
    id: 'replay-lease-part',
    item: 'p',
    title: 'replay, lease route, partitioned table',
    app: 'part',
    path: '/lease',
    keys: 'replay',
    targets: [vsSingleTable('replay-lease', 0.95)],
  },
  {
    id: 'replay-tx-part',
    item: 'p',
    title: 'replay, transactional route, partitioned table',
    app: 'part',
    path: '/tx',
    keys: 'replay',
    targets: [vsSingleTable('replay-tx', 0.95)],
  },
  {
    id: 'pool-lease-new',
    item: 'q',
    title: 'lease mode on pgPoolStore() (a pg pool, no TypeORM), new keys',
    app: 'pool',
    path: '/lease',
    keys: 'new',
    targets: [vsEmpty('lease-new')],
  },
  {
    id: 'replay-pool',
    item: 'q',
    title: 'replay of known keys, lease route on pgPoolStore()',
    app: 'pool',
    path: '/lease',
    keys: 'replay',
    targets: [vsEmpty('replay-lease')],
  },
  {
    id: 'cls-plain',
    item: 'q',
    title: "no idempotency, the plain insert in a nestjs-cls transaction (cls-tx's own baseline)",
    app: 'cls',
    path: '/plain-tx',
    keys: 'new',
    targets: [],
  },
  {
    id: 'cls-tx-new',
    item: 'q',
    title: 'transactional mode in nestjs-cls transactions (TypeORM adapter), new keys',
    app: 'cls',
    path: '/tx',
    keys: 'new',
    targets: [vsEmpty('tx-new')],
  },
  {
    id: 'replay-cls-tx',
    item: 'q',
    title: 'replay of known keys, transactional route in nestjs-cls transactions',
    app: 'cls',
    path: '/tx',
    keys: 'replay',
    targets: [vsEmpty('replay-tx')],
  },
  {
    id: 'redis-lease-new',
    item: 'r',
    title: 'lease mode on the Redis store, new keys',
    app: 'redis',
    path: '/lease',
    keys: 'new',
    targets: [vsBaseline(0.6, '>= 0.60x (a)'), vsPeer('peer-redis-new')],
  },
  {
    id: 'replay-redis',
    item: 'r',
    title: 'replay of known keys, lease route on the Redis store',
    app: 'redis',
    path: '/lease',
    keys: 'replay',
    targets: [vsBaseline(1.6, '>= 1.60x (a)'), vsPeer('peer-redis-replay')],
  },
  {
    id: 'peer-redis-new',
    item: 'n',
    title: '@node-idempotency/nestjs on Redis, new keys',
    app: 'peer',
    path: '/lease',
    keys: 'new',
    targets: [],
  },
  {
    id: 'peer-redis-replay',
    item: 'n',
    title: '@node-idempotency/nestjs on Redis, replay of known keys',
    app: 'peer',
    path: '/lease',
    keys: 'replay',
    targets: [],
  },
];

/**
 * The scenarios to run: all, or the chosen ones plus the baseline and whatever their targets
 * compare against.
 */
export function selectScenarios(only: readonly string[] | undefined): Scenario[] {
  if (!only) {
    return [...SCENARIOS];
  }
  const unknown = only.filter((id) => !SCENARIOS.some((scenario) => scenario.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `Unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}.`,
    );
  }
  const wanted = new Set([BASELINE, ...only]);
  for (const scenario of SCENARIOS) {
    if (wanted.has(scenario.id)) {
      scenario.targets.forEach((target) => wanted.add(target.against));
    }
  }
  return SCENARIOS.filter((scenario) => wanted.has(scenario.id));
}

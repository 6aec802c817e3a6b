// @ts-check
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// The layers of lib/, as import rules: the protocol is pure, the core knows only the store
// contract, the testing kit only the core, and nothing in lib/ reaches the apps, tests or bench.
const DRIVERS = ['typeorm', 'typeorm/*', '@nestjs/typeorm', 'pg', 'pg-*', 'ioredis', 'ioredis/*'];
const OUTSIDE_LIB = ['**/sample-app', '**/sample-app/**', '**/bench', '**/bench/**', '**/test/**'];
const ADAPTERS = [
  '**/postgres',
  '**/postgres/**',
  '**/redis',
  '**/redis/**',
  '**/testing',
  '**/testing/**',
];
const IO = [
  'fs',
  'net',
  'http',
  'https',
  'http2',
  'dgram',
  'dns',
  'tls',
  'child_process',
  'worker_threads',
];
const NODE_IO = [...IO, ...IO.map((name) => `node:${name}`), ...IO.map((name) => `${name}/*`)];

/** `import('x')` and `import('x').T` of `pattern`'s modules, which no-restricted-imports does not see. */
const forbidDynamic = (pattern, message) => [
  { selector: `ImportExpression[source.value=${pattern}]`, message },
  { selector: `TSImportType[argument.literal.value=${pattern}]`, message },
];
const DRIVER_PATTERN = '/^(typeorm|@nestjs\\/typeorm|pg|pg-[^/]*|ioredis)(\\/|$)/';

/** `@nestjs/terminus` is an optional peer: only the health subpath (lib/health) may load it. */
const TERMINUS = [
  ['@nestjs/terminus', '@nestjs/terminus/*'],
  'Only lib/health (nestjs-idempotency/health) imports @nestjs/terminus, an optional peer.',
];

/** `@typescript-eslint/no-restricted-imports` with the given groups, each with its reason. */
const forbid = (...groups) => [
  'error',
  { patterns: groups.map(([group, message, extra = {}]) => ({ group, message, ...extra })) },
];

/**
 * `forbid`, and also lib/postgres/index.ts (the TypeORM entry point) by any name an import inside
 * lib/postgres can give it, which path patterns cannot single out from other parent folders; and
 * the data layers an application brings, by package name (a path pattern would also match the
 * store's own lib/postgres/orm/kysely.ts).
 */
const withTypeormEntryForbidden = (...groups) => {
  const [level, options] = forbid(...groups);
  options.patterns.push({
    regex: '^\\.\\.(/index)?$|(^|/)postgres(/index)?$',
    message: 'lib/postgres/index.ts is the TypeORM entry point: import the module you need directly.',
  });
  options.patterns.push({
    regex: '^(kysely|knex|drizzle-orm|nestjs-cls|@nestjs-cls/[^/]+|@prisma/[^/]+)(/|$)',
    message:
      'The application brings its data layer and nestjs-cls: the store declares the shapes it uses of them.',
  });
  return [level, options];
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '*.config.*'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  ...[
    { files: ['lib/**/*.ts'], ignores: ['lib/health/**'], extra: [TERMINUS] },
    // The health indicator is core code, on the store contract only, that may load terminus.
    { files: ['lib/health/**/*.ts'], extra: [] },
  ].map(({ files, ignores = [], extra }) => ({
    files,
    ignores: [...ignores, 'lib/postgres/**', 'lib/redis/**', 'lib/testing/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': forbid(
        [DRIVERS, 'The core knows the store contract only: database drivers belong to an adapter.'],
        [
          ADAPTERS,
          'The core never imports an adapter (lib/postgres, lib/redis) or the testing kit.',
        ],
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
        ...extra,
      ),
      'no-restricted-syntax': [
        'error',
        ...forbidDynamic(
          DRIVER_PATTERN,
          'The core loads no database driver, not even lazily or as a type.',
        ),
        ...forbidDynamic(
          '/(^|\\/)(postgres|redis|testing)(\\/|$)/',
          'The core never loads an adapter or the testing kit.',
        ),
      ],
    },
  })),
  {
    files: ['lib/protocol/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': forbid(
        [
          ['@nestjs/*', 'rxjs', 'rxjs/*', ...NODE_IO, ...DRIVERS],
          'The protocol is pure functions: no Nest, RxJS or I/O.',
        ],
        [
          ['../*'],
          "The protocol takes only types from the rest of the module (the store contract's data, the options), no code.",
          { allowTypeImports: true },
        ],
        [ADAPTERS, 'The protocol never imports an adapter or the testing kit, not even a type.'],
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
      ),
      'no-restricted-syntax': [
        'error',
        ...forbidDynamic(
          '/^(@nestjs\\/|rxjs|\\.\\.\\/)/',
          'The protocol loads no Nest, RxJS or other part of the module.',
        ),
        ...forbidDynamic(DRIVER_PATTERN, 'The protocol loads no database driver.'),
      ],
    },
  },
  {
    files: ['lib/testing/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': forbid(
        [DRIVERS, 'The testing kit runs without a database driver.'],
        TERMINUS,
        [
          ['**/postgres', '**/postgres/**', '**/redis', '**/redis/**'],
          'The testing kit knows the core only, not an adapter.',
        ],
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
      ),
    },
  },
  {
    files: ['lib/postgres/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': forbid(
        [
          ['**/redis', '**/redis/**'],
          'The PostgreSQL adapter knows the core only, not another adapter.',
        ],
        [['**/testing', '**/testing/**'], 'An adapter does not depend on the testing kit.'],
        TERMINUS,
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
      ),
    },
  },
  {
    // The pool store (nestjs-idempotency/pg) and what it is built from run without TypeORM: only
    // lib/postgres/typeorm, and the TypeORM entry point that exports it, may load it.
    files: ['lib/postgres/**/*.ts'],
    ignores: ['lib/postgres/typeorm/**', 'lib/postgres/index.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': withTypeormEntryForbidden(
        [
          [
            'typeorm',
            'typeorm/*',
            '@nestjs/typeorm',
            '**/typeorm',
            '**/typeorm/**',
          ],
          'Outside lib/postgres/typeorm the PostgreSQL store runs on a pg pool alone: no TypeORM, not even a type.',
        ],
        [
          ['**/redis', '**/redis/**'],
          'The PostgreSQL adapter knows the core only, not another adapter.',
        ],
        [['**/testing', '**/testing/**'], 'An adapter does not depend on the testing kit.'],
        TERMINUS,
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
      ),
      'no-restricted-syntax': [
        'error',
        ...forbidDynamic(
          '/^(typeorm|@nestjs\\/typeorm)(\\/|$)|(^|\\/)typeorm(\\/|$)/',
          'Outside lib/postgres/typeorm the PostgreSQL store loads no TypeORM.',
        ),
      ],
    },
  },
  {
    files: ['lib/redis/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': forbid(
        [
          ['**/postgres', '**/postgres/**'],
          'The Redis adapter knows the core only, not another adapter.',
        ],
        [['**/testing', '**/testing/**'], 'An adapter does not depend on the testing kit.'],
        TERMINUS,
        [OUTSIDE_LIB, 'lib/ never imports the sample app, the bench or the tests.'],
      ),
    },
  },
);

// Nest 12 ships ES modules only, and Jest can load them solely in its native ESM mode, so test
// files (and the library they import) are compiled by SWC to ES modules here; `npm test` passes
// --experimental-vm-modules. The published build stays CommonJS (tsconfig.build.json).
const swc = [
  '@swc/jest',
  {
    module: { type: 'es6' },
    jsc: {
      target: 'es2022',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
    },
  },
];

const common = {
  rootDir: __dirname,
  // The examples import the package by its name, as an application does: its sources here.
  moduleNameMapper: {
    '^nestjs-idempotency$': '<rootDir>/lib/index.ts',
    '^nestjs-idempotency/pg$': '<rootDir>/lib/postgres/pool/index.ts',
    '^nestjs-idempotency/postgres$': '<rootDir>/lib/postgres/index.ts',
  },
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  testEnvironment: 'node',
};

module.exports = {
  // A global option: Jest ignores it inside a project.
  testTimeout: 60000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/utils/global-setup.ts',
      globalTeardown: '<rootDir>/test/utils/global-teardown.ts',
    },
    {
      ...common,
      displayName: 'reliability',
      testMatch: ['<rootDir>/test/reliability/**/*.rel-spec.ts'],
      globalSetup: '<rootDir>/test/utils/global-setup.ts',
      globalTeardown: '<rootDir>/test/utils/global-teardown.ts',
    },
  ],
};

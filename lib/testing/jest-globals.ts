/*
 * The few Jest globals the conformance suite uses, typed here so that the library's build does not
 * depend on @types/jest. Jest provides them in CommonJS and in its native ESM mode alike (unless
 * `injectGlobals` is off).
 */

/** A test body: may return a promise. */
export type TestBody = () => void | Promise<unknown>;

/** The matchers the suite uses (a subset of Jest's `expect`). */
export interface Matchers {
  readonly not: Matchers;
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toMatchObject(expected: object): void;
  toBeGreaterThan(expected: number): void;
  toBeGreaterThanOrEqual(expected: number): void;
  toBeLessThanOrEqual(expected: number): void;
  toHaveLength(expected: number): void;
}

/** The Jest globals the suite needs. */
export interface JestGlobals {
  describe(name: string, body: () => void): void;
  it(name: string, body: TestBody, timeoutMs?: number): void;
  beforeEach(body: TestBody, timeoutMs?: number): void;
  afterEach(body: TestBody, timeoutMs?: number): void;
  expect(actual: unknown): Matchers;
}

const NAMES = ['describe', 'it', 'beforeEach', 'afterEach', 'expect'] as const;

/** Jest's globals, or an error that says where the suite must be called from. */
export function jestGlobals(): JestGlobals {
  const scope = globalThis as Partial<Record<(typeof NAMES)[number], unknown>>;
  const missing = NAMES.filter((name) => typeof scope[name] !== 'function');
  if (missing.length > 0) {
    throw new Error(
      `nestjs-idempotency/testing: describeIdempotencyStore() runs inside a Jest test file, which provides describe, it, beforeEach, afterEach and expect as globals; ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing here. Call it at the top level of a *.spec.ts file, and keep Jest's injectGlobals on.`,
    );
  }
  return globalThis as unknown as JestGlobals;
}

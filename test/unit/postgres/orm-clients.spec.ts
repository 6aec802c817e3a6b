import { drizzleClient, entityManagerClient } from '../../../lib/postgres/pool';

/*
 * The `client` of each data layer that shows the pg connection under its transaction: the store
 * pipelines its statements on what they return, and falls back to `query` on `undefined`.
 * (test/e2e/cls-transactional.e2e-spec.ts runs both on the real ORMs.)
 */

/** What a node-postgres client looks like to them. */
const pgClient = () => ({ query: () => undefined, release: () => undefined });

describe('entityManagerClient', () => {
  it("gives the connection of the EntityManager's query runner", () => {
    const client = pgClient();
    expect(entityManagerClient({ queryRunner: { databaseConnection: client } })).toBe(client);
  });

  it('gives undefined for a manager without a query runner, or one not connected', () => {
    expect(entityManagerClient({})).toBeUndefined();
    expect(entityManagerClient({ queryRunner: {} })).toBeUndefined();
  });
});

describe('drizzleClient', () => {
  it("gives the pool client of a transaction's session", () => {
    const client = pgClient();
    expect(drizzleClient({ session: { client } })).toBe(client);
  });

  it('gives undefined for a session on the Pool itself, or without a client', () => {
    const pool = { query: () => undefined, totalCount: 0, idleCount: 0 };
    expect(drizzleClient({ session: { client: pool } })).toBeUndefined();
    expect(drizzleClient({ session: {} })).toBeUndefined();
    expect(drizzleClient({})).toBeUndefined();
  });
});

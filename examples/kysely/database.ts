import type { Generated } from 'kysely';

/** The tables Kysely knows, as `kysely-codegen` would write them. */
export interface Database {
  orders: { id: Generated<number>; customer: string; amount: number };
}

/** Injection tokens of the app's database. */
export const PG_POOL = Symbol('PG_POOL');
export const KYSELY = Symbol('KYSELY');

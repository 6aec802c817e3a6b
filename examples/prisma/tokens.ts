/** Injection tokens of the app's database. */
export const PG_POOL = Symbol('PG_POOL');
export const PRISMA = Symbol('PRISMA');

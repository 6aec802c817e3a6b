/** Injection token of the app's Knex instance. */
export const KNEX = Symbol('KNEX');

import { createIdempotencyTableSql } from 'nestjs-idempotency/pg';

/**
 * The keys' table, in a PostgreSQL schema of its own: Prisma Migrate drops the tables of its
 * schema that schema.prisma does not describe, and this one it must not touch.
 */
export const IDEMPOTENCY_TABLE = 'idempotency.idempotency_records';

/** Run once outside Prisma Migrate (a script, or `psql`), before the app starts. */
export const CREATE_IDEMPOTENCY_TABLE_SQL = `CREATE SCHEMA IF NOT EXISTS idempotency;
${createIdempotencyTableSql(IDEMPOTENCY_TABLE)}`;

import type {
  AppTransactionRow,
  PostgresAppTransactions,
} from '../app-transaction/app-transactions';

/** What `prismaQuery` uses of a Prisma interactive transaction (`Prisma.TransactionClient`). */
interface PrismaRawClient {
  $queryRawUnsafe(text: string, ...values: unknown[]): Promise<unknown>;
}

/**
 * How the PostgreSQL store sends one statement on a Prisma interactive transaction (`txHost.tx`
 * with `@nestjs-cls/transactional-adapter-prisma`, on a client built with `@prisma/adapter-pg`), as
 * `pgPoolStore({ transactionHost: { token: TransactionHost, query: prismaQuery } })`. The values go
 * to pg as they are, so PostgreSQL types each from where it stands, as for the store's own
 * statements on the pool; bytea comes back as a `Uint8Array`, which the store accepts.
 */
export const prismaQuery: PostgresAppTransactions['query'] = async (tx, text, values) =>
  (await (tx as PrismaRawClient).$queryRawUnsafe(text, ...values)) as AppTransactionRow[];

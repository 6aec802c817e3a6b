import type { InjectionToken, OnApplicationShutdown, Provider } from '@nestjs/common';
import { Pool, type PoolConfig } from 'pg';
import { IDEMPOTENCY_DEFAULTS } from '../../idempotency-options.defaults';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../../idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../../interfaces/idempotency-options.interface';
import type { IdempotencyStoreProvider } from '../../store/idempotency-store.definition';
import { AppTransactionIdempotencyStore } from '../app-transaction/app-transaction.store';
import { type ClsTransactionHost, clsTransactionHost } from '../app-transaction/app-transactions';
import { IdempotencyTransactionContext } from '../../transaction/idempotency-transaction.context';
import { PoolCheckoutWarner } from '../app-transaction/pool-checkout-warner';
import { resolvePartitioning } from '../postgres-store.options';
import { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
import type { PgPoolStoreOptions } from './pg-pool-store.options';

/** A pool `pgPoolStore()` created from `connection`: ended as the application shuts down. */
class OwnedPool implements OnApplicationShutdown {
  readonly pool: Pool;

  constructor(connection: string | PoolConfig, storeTimeoutMs: number) {
    // A checkout that outlives storeTimeoutMs serves a request already answered 503: it gives up
    // then too, instead of queueing without bound while the database is slow.
    this.pool = new Pool({
      connectionTimeoutMillis: storeTimeoutMs,
      ...(typeof connection === 'string' ? { connectionString: connection } : connection),
    });
    // An idle connection the server closes is replaced on the next checkout; without a listener
    // its 'error' event would end the process.
    this.pool.on('error', () => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * The PostgreSQL store on a plain node-postgres pool, without TypeORM, for
 * `IdempotencyModule.forRoot({ store: pgPoolStore({ pool }) })`: for applications on Prisma,
 * Drizzle, Kysely, Knex or pg itself. Lease mode only; routes with `transactional: true` need
 * `postgresStore()`. The pool is the application's (`pool`, `poolToken`), or one of the module's
 * own made from `connection` and ended at shutdown.
 *
 * @example
 * ```ts
 * IdempotencyModule.forRoot({ store: pgPoolStore({ connection: process.env.DATABASE_URL }) });
 * IdempotencyModule.forRootAsync({
 *   store: pgPoolStore({ poolToken: PG_POOL, imports: [DatabaseModule] }),
 * });
 * ```
 */
export function pgPoolStore(options: PgPoolStoreOptions): IdempotencyStoreProvider {
  const given = (['pool', 'connection', 'poolToken'] as const).filter(
    (name) => options[name] !== undefined && options[name] !== null,
  );
  if (given.length !== 1) {
    throw new Error(
      `nestjs-idempotency: pgPoolStore() needs exactly one of \`pool\`, \`connection\` or \`poolToken\`${given.length > 1 ? `, not ${given.join(' and ')}` : ''}.`,
    );
  }
  if (options.transactionHost && options.partitioning) {
    throw new Error(
      "nestjs-idempotency: pgPoolStore() runs transactional routes in the application's transactions on an ordinary table only: a partitioned table's claim needs READ COMMITTED from the BEGIN, which the application sends. Leave out `partitioning` or `transactionHost`.",
    );
  }
  // Tokens per call: two registrations of the module, each with its own pgPoolStore(), keep their
  // own options and pools.
  const optionsToken = Symbol('nestjs-idempotency:pg-pool-store-options');
  const poolToken = options.poolToken ?? Symbol('nestjs-idempotency:pg-pool');
  const providers: Provider[] = [{ provide: optionsToken, useValue: { ...options } }];
  if (options.poolToken === undefined) {
    const ownedToken = Symbol('nestjs-idempotency:owned-pg-pool');
    providers.push(
      {
        provide: ownedToken,
        useFactory: ({ connection }: PgPoolStoreOptions, module: IdempotencyModuleOptions) =>
          connection ? new OwnedPool(connection, storeTimeoutOf(module)) : null,
        inject: [optionsToken, IDEMPOTENCY_MODULE_OPTIONS],
      },
      {
        provide: poolToken,
        useFactory: ({ pool }: PgPoolStoreOptions, owned: OwnedPool | null) => pool ?? owned!.pool,
        inject: [optionsToken, ownedToken],
      },
    );
  }
  // A pool of the module's own serves no query of the application's: nothing to watch there.
  if (options.transactionHost && options.connection === undefined) {
    providers.push({
      provide: Symbol('nestjs-idempotency:pool-checkout-warner'),
      useFactory: (
        pool: Pool,
        context: IdempotencyTransactionContext,
        { warnOnQueriesOutsideTransaction: warn }: PgPoolStoreOptions,
      ) =>
        isPool(pool) && (warn ?? process.env.NODE_ENV !== 'production')
          ? new PoolCheckoutWarner(pool, context)
          : null,
      inject: [poolToken, IdempotencyTransactionContext, optionsToken],
    });
  }
  return {
    useFactory: (
      module: IdempotencyModuleOptions,
      pool: Pool,
      { tableName, partitioning, transactionHost }: PgPoolStoreOptions,
      host?: ClsTransactionHost,
    ) => {
      if (!isPool(pool)) {
        throw new Error(
          `nestjs-idempotency: pgPoolStore() needs a pg Pool; its ${given[0]}${options.poolToken ? ` (${tokenName(options.poolToken)})` : ''} gives ${describe(pool)}.`,
        );
      }
      if (transactionHost) {
        return new AppTransactionIdempotencyStore(
          pool,
          clsTransactionHost(host!, transactionHost.query, transactionHost.client),
          tableName,
        );
      }
      return new PgPoolIdempotencyStore(pool, tableName, resolvePartitioning(partitioning, module));
    },
    inject: [
      poolToken,
      optionsToken,
      ...(options.transactionHost ? [options.transactionHost.token] : []),
    ],
    imports: options.imports,
    providers,
  };
}

/**
 * A pg Pool, possibly of another copy of pg than ours (so not `instanceof`). A pg `Client` has the
 * same methods but one connection, which the store's concurrent statements cannot share: only a
 * pool counts its clients.
 */
function isPool(value: unknown): value is Pool {
  const candidate = value as Partial<Pool> | null | undefined;
  return (
    typeof candidate?.query === 'function' &&
    typeof candidate.connect === 'function' &&
    typeof candidate.end === 'function' &&
    typeof candidate.totalCount === 'number' &&
    typeof candidate.idleCount === 'number'
  );
}

function storeTimeoutOf(module: IdempotencyModuleOptions | undefined): number {
  return module?.storeTimeoutMs ?? IDEMPOTENCY_DEFAULTS.storeTimeoutMs;
}

function tokenName(token: InjectionToken): string {
  return typeof token === 'function' ? token.name : String(token);
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return String(value);
  }
  return `a ${value.constructor?.name ?? 'object'}`;
}

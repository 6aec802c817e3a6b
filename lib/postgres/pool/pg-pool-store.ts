import type { OnApplicationShutdown, Provider } from '@nestjs/common';
import { Pool } from 'pg';
import type { IdempotencyModuleOptions } from '../../interfaces/idempotency-options.interface';
import type { IdempotencyStoreProvider } from '../../store/idempotency-store.definition';
import { resolvePartitioning } from '../postgres-store.options';
import { PgPoolIdempotencyStore } from '../store/pg-pool-idempotency.store';
import type { PgPoolStoreOptions } from './pg-pool-store.options';

/** A pool `pgPoolStore()` created from `connection`: ended as the application shuts down. */
class OwnedPool implements OnApplicationShutdown {
  readonly pool: Pool;

  constructor(connection: string | NonNullable<PgPoolStoreOptions['connection']>) {
    this.pool = new Pool(
      typeof connection === 'string' ? { connectionString: connection } : connection,
    );
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
  const sources = [options.pool, options.connection, options.poolToken].filter(
    (source) => source !== undefined,
  );
  if (sources.length !== 1) {
    throw new Error(
      'nestjs-idempotency: pgPoolStore() needs exactly one of `pool`, `connection` or `poolToken`.',
    );
  }
  // Tokens per call: a module with two such stores (store and transactionalStore) keeps both.
  const optionsToken = Symbol('nestjs-idempotency:pg-pool-store-options');
  const poolToken = options.poolToken ?? Symbol('nestjs-idempotency:pg-pool');
  const providers: Provider[] = [{ provide: optionsToken, useValue: { ...options } }];
  if (options.poolToken === undefined) {
    const ownedToken = Symbol('nestjs-idempotency:owned-pg-pool');
    providers.push(
      {
        provide: ownedToken,
        useFactory: ({ connection }: PgPoolStoreOptions) =>
          connection === undefined ? null : new OwnedPool(connection),
        inject: [optionsToken],
      },
      {
        provide: poolToken,
        useFactory: ({ pool }: PgPoolStoreOptions, owned: OwnedPool | null) => pool ?? owned!.pool,
        inject: [optionsToken, ownedToken],
      },
    );
  }
  return {
    useFactory: (
      module: IdempotencyModuleOptions,
      pool: Pool,
      { tableName, partitioning }: PgPoolStoreOptions,
    ) => {
      if (!isPool(pool)) {
        throw new Error(
          `nestjs-idempotency: pgPoolStore()'s poolToken ${String(options.poolToken)} gives no pg Pool.`,
        );
      }
      return new PgPoolIdempotencyStore(pool, tableName, resolvePartitioning(partitioning, module));
    },
    inject: [poolToken, optionsToken],
    imports: options.imports,
    providers,
  };
}

/** A pg Pool, possibly of another copy of pg than ours (so not `instanceof`). */
function isPool(value: unknown): value is Pool {
  const candidate = value as Partial<Pool> | null;
  return (
    typeof candidate?.query === 'function' &&
    typeof candidate.connect === 'function' &&
    typeof candidate.end === 'function'
  );
}

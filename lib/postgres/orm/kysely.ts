import type {
  AppTransactionRow,
  PostgresAppTransactions,
} from '../app-transaction/app-transactions';
import type {
  ClsAdapterSettings,
  ClsIsolationLevel,
  ClsTransactionalAdapter,
} from './cls-transactional-adapter';

/** Options of a Kysely transaction under `@nestjs-cls/transactional`. */
export interface KyselyClsTransactionOptions {
  isolationLevel?: ClsIsolationLevel;
}

/** A Kysely command: `execute()` sends it. */
interface KyselyCommand<T> {
  execute(): Promise<T>;
}

/** What the adapter uses of Kysely's `ControlledTransaction`, whatever its database type. */
interface KyselyControlledTransaction {
  commit(): KyselyCommand<void>;
  rollback(): KyselyCommand<void>;
  savepoint(name: string): KyselyCommand<KyselyControlledTransaction>;
  releaseSavepoint(name: string): KyselyCommand<unknown>;
  rollbackToSavepoint(name: string): KyselyCommand<unknown>;
}

/** What the adapter uses of a `Kysely` instance (Kysely 0.27.4 and later). */
export interface KyselyConnection {
  startTransaction(): {
    setIsolationLevel(level: ClsIsolationLevel): { execute(): Promise<object> };
    execute(): Promise<object>;
  };
}

/**
 * The adapter `kyselyTransactionalAdapter()` makes, as the type argument of
 * `TransactionHost<KyselyTransactionalAdapter<Kysely<Database>>>`: `txHost.tx` is a `TDb`.
 */
export type KyselyTransactionalAdapter<TDb extends KyselyConnection> = ClsTransactionalAdapter<
  TDb,
  TDb,
  KyselyClsTransactionOptions
>;

/**
 * A `@nestjs-cls/transactional` adapter for Kysely, for registries without
 * `@nestjs-cls/transactional-adapter-kysely` (it behaves the same; use either). `txHost.tx` is the
 * `Kysely` instance outside a transaction, and its `ControlledTransaction` inside one;
 * `Propagation.Nested` runs in a savepoint.
 *
 * @example
 * ```ts
 * new ClsPluginTransactional({
 *   imports: [DatabaseModule],
 *   adapter: kyselyTransactionalAdapter<Kysely<Database>>({ connectionToken: KYSELY }),
 * });
 * ```
 *
 * @typeParam TDb - the application's `Kysely<Database>`: the type of `txHost.tx`.
 */
export function kyselyTransactionalAdapter<TDb extends KyselyConnection>(
  settings: ClsAdapterSettings<KyselyClsTransactionOptions>,
): KyselyTransactionalAdapter<TDb> {
  return {
    connectionToken: settings.connectionToken,
    defaultTxOptions: settings.defaultTxOptions,
    optionsFactory: (db) => ({
      wrapWithTransaction: async (options, fn, setTx) => {
        const builder = db.startTransaction();
        const level = options?.isolationLevel;
        const trx = (await (
          level ? builder.setIsolationLevel(level) : builder
        ).execute()) as KyselyControlledTransaction;
        return settle(trx, fn, setTx as (tx: unknown) => void, {
          keep: () => trx.commit().execute(),
          undo: () => trx.rollback().execute(),
        });
      },
      wrapWithNestedTransaction: async (_options, fn, setTx, tx) => {
        const name = nextSavepointName();
        const outer = tx as unknown as KyselyControlledTransaction;
        const trx = await outer.savepoint(name).execute();
        return settle(trx, fn, setTx as (tx: unknown) => void, {
          keep: () => trx.releaseSavepoint(name).execute(),
          undo: () => trx.rollbackToSavepoint(name).execute(),
        });
      },
      getFallbackInstance: () => db,
    }),
  };
}

/**
 * Runs `fn` with `trx` as the host's transaction, then keeps its work when it resolves and undoes
 * it when it rejects: `fn`'s own error wins over a failed rollback, which the broken connection
 * behind it explains better. A keep that fails is undone as well: Kysely gives a transaction's
 * connection back to the pool only once it committed or rolled back.
 */
async function settle(
  trx: KyselyControlledTransaction,
  fn: () => Promise<unknown>,
  setTx: (tx: unknown) => void,
  end: { keep(): Promise<unknown>; undo(): Promise<unknown> },
): Promise<unknown> {
  setTx(trx);
  let result: unknown;
  try {
    result = await fn();
  } catch (error) {
    await end.undo().catch(() => undefined);
    throw error;
  }
  try {
    await end.keep();
  } catch (error) {
    await end.undo().catch(() => undefined);
    throw error;
  }
  return result;
}

let savepoints = 0;

/** A savepoint name no enclosing savepoint of the same transaction uses. */
function nextSavepointName(): string {
  savepoints = (savepoints + 1) % Number.MAX_SAFE_INTEGER;
  return `cls_nested_${savepoints}`;
}

/** What `kyselyQuery` uses of Kysely's `CompiledQuery`: its `raw` factory. */
export interface KyselyCompiledQueryFactory {
  raw(sql: string, parameters: unknown[]): unknown;
}

/** What `kyselyQuery` uses of a Kysely transaction. */
interface KyselyExecutor {
  executeQuery(query: unknown): Promise<{ rows: unknown[] }>;
}

/**
 * How the PostgreSQL store sends one statement on a Kysely transaction (`txHost.tx`), as
 * `pgPoolStore({ transactionHost: { token: TransactionHost, query: kyselyQuery(CompiledQuery) } })`.
 * Takes Kysely's own `CompiledQuery`, so that the module loads no Kysely of its own.
 */
export function kyselyQuery(
  compiledQuery: KyselyCompiledQueryFactory,
): PostgresAppTransactions['query'] {
  return async (tx, text, values) => {
    const result = await (tx as KyselyExecutor).executeQuery(compiledQuery.raw(text, [...values]));
    return result.rows as AppTransactionRow[];
  };
}

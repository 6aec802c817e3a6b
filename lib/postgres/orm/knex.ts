import type {
  AppTransactionRow,
  PostgresAppTransactions,
} from '../app-transaction/app-transactions';
import type {
  ClsAdapterSettings,
  ClsIsolationLevel,
  ClsTransactionalAdapter,
} from './cls-transactional-adapter';

/** Options of a Knex transaction under `@nestjs-cls/transactional` (Knex's `TransactionConfig`). */
export interface KnexClsTransactionOptions {
  isolationLevel?: ClsIsolationLevel;
  readOnly?: boolean;
}

/** What the adapter uses of a `Knex` instance or transaction. */
export interface KnexConnection {
  transaction(
    scope: (trx: unknown) => Promise<unknown>,
    config?: KnexClsTransactionOptions,
  ): Promise<unknown>;
}

/**
 * The adapter `knexTransactionalAdapter()` makes, as the type argument of
 * `TransactionHost<KnexTransactionalAdapter<Knex>>`: `txHost.tx` is a `TKnex`.
 */
export type KnexTransactionalAdapter<TKnex extends KnexConnection> = ClsTransactionalAdapter<
  TKnex,
  TKnex,
  KnexClsTransactionOptions
>;

/**
 * A `@nestjs-cls/transactional` adapter for Knex, for registries without
 * `@nestjs-cls/transactional-adapter-knex` (it behaves the same; use either). `txHost.tx` is the
 * `Knex` instance outside a transaction, and its `Knex.Transaction` inside one;
 * `Propagation.Nested` runs in a savepoint (Knex's nested transaction).
 *
 * @example
 * ```ts
 * new ClsPluginTransactional({
 *   imports: [DatabaseModule],
 *   adapter: knexTransactionalAdapter<Knex>({ connectionToken: KNEX }),
 * });
 * ```
 *
 * @typeParam TKnex - the application's `Knex`: the type of `txHost.tx`.
 */
export function knexTransactionalAdapter<TKnex extends KnexConnection>(
  settings: ClsAdapterSettings<KnexClsTransactionOptions>,
): KnexTransactionalAdapter<TKnex> {
  const run = (
    on: KnexConnection,
    options: KnexClsTransactionOptions | undefined,
    fn: () => Promise<unknown>,
    setTx: (tx?: TKnex) => void,
  ) =>
    on.transaction((trx) => {
      setTx(trx as TKnex);
      return fn();
    }, options);
  return {
    connectionToken: settings.connectionToken,
    defaultTxOptions: settings.defaultTxOptions,
    optionsFactory: (knex) => ({
      wrapWithTransaction: (options, fn, setTx) => run(knex, options, fn, setTx),
      wrapWithNestedTransaction: (_options, fn, setTx, tx) => run(tx, undefined, fn, setTx),
      getFallbackInstance: () => knex,
    }),
  };
}

/** What `knexQuery` uses of a Knex transaction. */
interface KnexRaw {
  raw(sql: string, bindings: unknown[]): PromiseLike<{ rows: unknown[] }>;
}

/**
 * How the PostgreSQL store sends one statement on a Knex transaction (`txHost.tx`), as
 * `pgPoolStore({ transactionHost: { token: TransactionHost, query: knexQuery } })`. Knex binds `?`
 * placeholders in order: each `$n` of the store's SQL becomes a `?` with its value (repeated where
 * `$n` is), and a literal `?` is escaped.
 */
export const knexQuery: PostgresAppTransactions['query'] = async (tx, text, values) => {
  const bindings: unknown[] = [];
  let positional = '';
  let copied = 0;
  for (const match of text.matchAll(/\?|\$(\d+)/g)) {
    positional += text.slice(copied, match.index);
    copied = match.index + match[0].length;
    if (match[1] === undefined) {
      positional += '\\?';
      continue;
    }
    // Knex reads `??` as an identifier binding, and `\??` as an escaped `?` plus a binding
    // whose escape it drops: a placeholder never directly follows another `?`.
    positional += positional.endsWith('?') ? ' ?' : '?';
    bindings.push(values[Number(match[1]) - 1]);
  }
  positional += text.slice(copied);
  const result = await (tx as KnexRaw).raw(positional, bindings);
  return result.rows as AppTransactionRow[];
};

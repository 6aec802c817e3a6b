/**
 * The shape `@nestjs-cls/transactional` takes as a `TransactionalAdapter` (its `adapter` option of
 * `ClsPluginTransactional`), declared here so that the module loads neither that package nor the
 * data layer: both are the application's.
 *
 * @typeParam TConnection - what `connectionToken` resolves to (a `Kysely`, a `Knex`).
 * @typeParam TTx - what `TransactionHost#tx` gives inside a transaction, and outside one.
 * @typeParam TOptions - the options `@Transactional()` and `withTransaction()` accept.
 */
export interface ClsTransactionalAdapter<TConnection, TTx, TOptions> {
  /** The provider the plugin injects as the connection. */
  readonly connectionToken: unknown;
  /** Options of every transaction, merged under those of each call. */
  readonly defaultTxOptions?: Partial<TOptions>;
  /** Given the connection, how to run a function in a new (or a nested) transaction. */
  optionsFactory(connection: TConnection): ClsTransactionalAdapterOptions<TTx, TOptions>;
}

/** The transaction handling an adapter gives `@nestjs-cls/transactional` for one connection. */
export interface ClsTransactionalAdapterOptions<TTx, TOptions> {
  /** Runs `fn` in a new transaction, made visible to it through `setTx`. */
  wrapWithTransaction(
    options: Partial<TOptions> | undefined,
    fn: () => Promise<unknown>,
    setTx: (tx?: TTx) => void,
  ): Promise<unknown>;
  /** Runs `fn` in a savepoint of `tx` (`Propagation.Nested`). */
  wrapWithNestedTransaction(
    options: Partial<TOptions> | undefined,
    fn: () => Promise<unknown>,
    setTx: (tx?: TTx) => void,
    tx: TTx,
  ): Promise<unknown>;
  /** What `TransactionHost#tx` gives outside a transaction: the connection itself. */
  getFallbackInstance(): TTx;
}

/** What both adapters take: the connection's provider, and default transaction options. */
export interface ClsAdapterSettings<TOptions> {
  /** The injection token of the application's connection (its `Kysely` or `Knex` instance). */
  connectionToken: unknown;
  /** Options of every transaction, merged under those of each call. */
  defaultTxOptions?: Partial<TOptions>;
}

/** PostgreSQL's isolation levels, as both data layers spell them. */
export type ClsIsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

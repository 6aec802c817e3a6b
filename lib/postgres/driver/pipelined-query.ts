import { type ClientBase, type Connection, type QueryResultRow, type Submittable, types } from 'pg';
import { inPgPipelineMode, wireOf } from './pg-internals';

/** A value sent to PostgreSQL: text, bytes (sent in binary), or SQL NULL. */
export type PipelineValue = string | Buffer | null;

/**
 * One statement of a pipeline: with a `name`, a statement prepared once per connection; without,
 * an unnamed one parsed each time (BEGIN, COMMIT).
 */
export interface PipelineStatement {
  text: string;
  name?: string;
  values?: readonly PipelineValue[];
}

/** What one statement of a pipeline returned. */
export interface PipelineResult<R extends QueryResultRow = QueryResultRow> {
  rows: R[];
  rowCount: number;
}

/** The error a pipeline failed with, and which of its statements raised it. */
export class PipelineError extends Error {
  /** PostgreSQL's SQLSTATE of the failure, when it came from the server. */
  readonly code: string | undefined;

  constructor(
    /** Index of the statement that failed; the ones after it were not run. */
    readonly statementIndex: number,
    override readonly cause: unknown,
  ) {
    super(String((cause as { message?: unknown } | null)?.message ?? cause));
    this.name = 'PipelineError';
    // The SQLSTATE is read where callers look for it; PostgreSQL's other fields stay on `cause`.
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/**
 * Sends several statements in one round trip: all their protocol messages, then a single Sync.
 * PostgreSQL runs them in order and, at the first error, skips the rest up to the Sync: a COMMIT
 * behind a failed write never runs (the transaction is left aborted, for the caller to roll
 * back). It costs one network round trip and one write on each side instead of one per
 * statement; round trips, not statement execution, are what the hot paths spend most on.
 *
 * node-postgres has no such call of its own (its pipeline mode gives every query its own Sync and
 * is a per-client setting), but it accepts any object with a `submit` method as a query and hands
 * it the server's answers; pg-cursor is built the same way.
 */
class PipelinedQuery implements Submittable {
  private readonly results: PipelineResult[] = [];
  private parsers: ((value: string) => unknown)[] = [];
  private fieldNames: string[] = [];
  private rows: QueryResultRow[] = [];
  private settled = false;
  private submitError: PipelineError | null = null;

  constructor(
    private readonly statements: readonly PipelineStatement[],
    /**
     * Called once with the outcome. The client may wrap it (to clear its `query_timeout` timer),
     * so it is looked up when the answer arrives.
     */
    public callback: (error: unknown, results?: PipelineResult[]) => void,
  ) {}

  /**
   * Read by the client when PostgreSQL reports a Parse as complete: it then records the statement
   * of this name as prepared on the connection, as for its own queries. Each Parse is sent right
   * before its statement's Bind, after the statements before it were executed, so the statement
   * whose Parse completes is the one after those already answered.
   */
  get name(): string | undefined {
    return this.statements[this.results.length]?.name;
  }

  /** The text recorded with `name`. */
  get text(): string | undefined {
    return this.statements[this.results.length]?.text;
  }

  submit(connection: Connection): void {
    const wire = wireOf(connection);
    wire.stream.cork?.();
    try {
      // In order, each statement's Parse next to its Bind: a BEGIN with an isolation level must
      // run before anything is parsed that takes a snapshot (PostgreSQL refuses it after one).
      for (const statement of this.statements) {
        if (statement.name === undefined || wire.parsedStatements[statement.name] === undefined) {
          wire.parse({ name: statement.name, text: statement.text, types: [] });
        }
        wire.bind({ statement: statement.name ?? '', values: statement.values ?? [] });
        wire.describe({ type: 'P', name: '' });
        wire.execute({ portal: '', rows: 0 });
      }
    } catch (error) {
      // A value the protocol could not encode: reported once the server has answered the Sync.
      this.submitError = new PipelineError(this.results.length, error);
    } finally {
      // Whatever happened above, the server must get its Sync, or the connection would hang.
      wire.sync();
      wire.stream.uncork?.();
    }
  }

  handleRowDescription(message: { fields: { name: string; dataTypeID: number }[] }): void {
    this.fieldNames = message.fields.map((field) => field.name);
    this.parsers = message.fields.map((field) => types.getTypeParser(field.dataTypeID, 'text'));
  }

  handleDataRow(message: { fields: (string | null)[] }): void {
    const row: QueryResultRow = {};
    for (let i = 0; i < message.fields.length; i++) {
      const raw = message.fields[i];
      row[this.fieldNames[i]] = raw === null ? null : this.parsers[i](raw);
    }
    this.rows.push(row);
  }

  handleCommandComplete(message: { text: string }): void {
    // "INSERT 0 1", "UPDATE 1", "SELECT 1", "BEGIN": the row count, when any, comes last.
    const count = /\s(\d+)$/.exec(message.text);
    this.results.push({ rows: this.rows, rowCount: count ? Number(count[1]) : 0 });
    this.rows = [];
  }

  handleEmptyQuery(): void {
    this.results.push({ rows: [], rowCount: 0 });
  }

  handleError(error: unknown): void {
    this.finish(new PipelineError(this.results.length, error));
  }

  handleReadyForQuery(): void {
    this.finish(this.submitError, this.results);
  }

  handlePortalSuspended(): void {
    // Never: every portal is executed without a row limit.
  }

  handleCopyInResponse(): void {
    // Never: no statement of a pipeline is a COPY.
  }

  handleCopyData(): void {
    // Never: see handleCopyInResponse.
  }

  private finish(error: unknown, results?: PipelineResult[]): void {
    if (!this.settled) {
      this.settled = true;
      this.callback(error, results);
    }
  }
}

/**
 * Runs `statements` on `client` in one round trip (see PipelinedQuery). On a client in
 * node-postgres's own pipeline mode, which refuses custom queries, they are sent one by one with
 * the same all-or-nothing outcome: the first error stops the rest.
 */
export function runPipeline(
  client: ClientBase,
  statements: readonly PipelineStatement[],
): Promise<PipelineResult[]> {
  if (!sendsOneSync(client)) {
    return runOneByOne(client, statements);
  }
  return new Promise((resolve, reject) => {
    void client.query(
      new PipelinedQuery(statements, (error, results) =>
        error ? reject(error) : resolve(results ?? []),
      ),
    );
  });
}

/**
 * Whether runPipeline sends `client`'s statements with a single Sync, so that those outside an
 * explicit transaction share one implicit transaction (committed at the Sync). Not so in
 * node-postgres's own pipeline mode, where each statement commits on its own.
 */
export function sendsOneSync(client: ClientBase): boolean {
  return !inPgPipelineMode(client);
}

async function runOneByOne(
  client: ClientBase,
  statements: readonly PipelineStatement[],
): Promise<PipelineResult[]> {
  const results: PipelineResult[] = [];
  for (const [index, statement] of statements.entries()) {
    try {
      const { rows, rowCount } = await client.query({
        name: statement.name,
        text: statement.text,
        values: statement.values ? [...statement.values] : undefined,
      });
      results.push({ rows, rowCount: rowCount ?? 0 });
    } catch (error) {
      throw new PipelineError(index, error);
    }
  }
  return results;
}

import type { ClaimHandle, ClaimRequest } from '../../store/claim-result.interface';
import type { StoredResponse } from '../../store/stored-response.interface';
import type { IdempotencyTransactionHandle } from '../../store/transactional-idempotency-store';
import { isConnectionFailure } from '../driver/connection-failure';
import { type PipelineStatement, runPipeline } from '../driver/pipelined-query';
import { sqlstateWithin } from '../driver/sqlstate';
import { explainWriteFailure } from '../driver/write-failure';
import {
  ROLLBACK_TO_CLAIM,
  type TransactionalWrites,
  completionInTransaction,
  notReplayableInTransaction,
} from '../layout/planned';
import { type PostgresAppTransactions, transactionClient } from './app-transactions';
import { Inbox } from './inbox';

/** What the transaction is asked to do next, in its own async context. */
type Command =
  | { kind: 'run'; work: () => Promise<unknown>; settle: Settle }
  | {
      kind: 'commit';
      write: PipelineStatement;
      discardWrites: boolean;
      /** Told when a failed statement of the handler had aborted the transaction. */
      aborted: (error: unknown) => void;
    }
  | { kind: 'rollback' };

interface Settle {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Thrown inside the application's transaction to have it rolled back. */
class RollBack extends Error {
  constructor() {
    super('nestjs-idempotency: the idempotency transaction was rolled back.');
  }
}

/** What the claim in a new transaction found: a claim it won, or another answer. */
export type AppClaim<Other> = { won: ClaimHandle } | { other: Other };

/** The store's side of an application transaction: its writes and their limits. */
export interface AppTransactionStore {
  readonly layout: TransactionalWrites;
  /** The TTL a transactional write must use, from the claim's TTL and the one asked for. */
  transactionalTtlMs(claimTtlMs: number, ttlMs: number): number;
}

/**
 * A key claimed inside a transaction that the application's transaction manager opened (through
 * `PostgresAppTransactions.run`). That transaction ends when the function given to `run`
 * settles, and the handler must run inside it to find it: so the function claims, then serves
 * what this handle is asked (run the handler, write the response and return to commit, or throw
 * to roll back), one request at a time, until one of the last two.
 */
export class AppTransaction<TTx> implements IdempotencyTransactionHandle<TTx> {
  handle!: ClaimHandle;
  transaction!: TTx;
  private readonly inbox = new Inbox<Command>();
  /** Settles once the application's transaction committed (resolves) or rolled back (rejects). */
  private ended: Promise<void> = Promise.resolve();

  constructor(
    private readonly transactions: PostgresAppTransactions<TTx>,
    private readonly store: AppTransactionStore,
    private readonly request: ClaimRequest,
  ) {}

  /**
   * Opens the application's transaction and runs `claim` in it. A won claim keeps the
   * transaction open for this handle; any other answer rolls it back.
   */
  open<Other>(claim: (transaction: TTx) => Promise<AppClaim<Other>>): Promise<AppClaim<Other>> {
    return new Promise((resolve, reject) => {
      let claimed: AppClaim<Other> | undefined;
      this.ended = this.transactions.run(async (transaction) => {
        claimed = await claim(transaction);
        if ('other' in claimed) {
          resolve(claimed);
          throw new RollBack();
        }
        this.handle = claimed.won;
        this.transaction = transaction;
        resolve(claimed);
        await this.serve();
      });
      this.ended.then(
        () => this.close(new Error('nestjs-idempotency: the idempotency transaction committed.')),
        (error: unknown) => {
          this.close(error);
          // The transaction failed to open, or the claim in it failed: rolled back by now.
          if (claimed === undefined) {
            reject(error);
          }
        },
      );
    });
  }

  runInTransaction<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.inbox.send({
        kind: 'run',
        work,
        settle: { resolve: resolve as (value: unknown) => void, reject },
      });
    });
  }

  completeAndCommit(response: StoredResponse, ttlMs: number): Promise<void> {
    return this.commitWith(false, response.status, this.completion(response, ttlMs));
  }

  markNotReplayableAndCommit(status: number | null, ttlMs: number): Promise<void> {
    return this.commitWith(
      false,
      status,
      notReplayableInTransaction(this.store.layout, this.handle, status, this.ttl(ttlMs)),
    );
  }

  async discardWritesAndComplete(response: StoredResponse, ttlMs: number): Promise<boolean> {
    await this.commitWith(true, response.status, this.completion(response, ttlMs));
    return true;
  }

  async rollback(): Promise<void> {
    if (!this.inbox.closed) {
      this.inbox.send({ kind: 'rollback' });
    }
    await this.ended.catch(() => undefined);
  }

  isConnectionFailure(error: unknown): boolean {
    return isConnectionFailure(error);
  }

  private async commitWith(
    discardWrites: boolean,
    status: number | null,
    write: PipelineStatement,
  ): Promise<void> {
    // A transaction the handler's failed statement aborted stays open, for the response to be
    // stored alone (discardWritesAndComplete); anything else ends it.
    const aborted = new Promise<never>((_, reject) =>
      this.inbox.send({ kind: 'commit', write, discardWrites, aborted: reject }),
    );
    try {
      await Promise.race([this.ended, aborted]);
    } catch (error) {
      throw explainWriteFailure(error, sqlstateWithin(error), status);
    }
  }

  private completion(response: StoredResponse, ttlMs: number): PipelineStatement {
    return completionInTransaction(
      this.store.layout,
      this.handle,
      this.handle.token,
      response,
      this.ttl(ttlMs),
    );
  }

  private ttl(ttlMs: number): number {
    return this.store.transactionalTtlMs(this.request.ttlMs, ttlMs);
  }

  /** Does what the handle is asked, in the transaction's async context, until it ends. */
  private async serve(): Promise<void> {
    for (;;) {
      const command = await this.inbox.take();
      switch (command.kind) {
        case 'run':
          try {
            command.settle.resolve(await command.work());
          } catch (error) {
            command.settle.reject(error);
          }
          break;
        case 'commit':
          try {
            await this.send(
              command.discardWrites ? [ROLLBACK_TO_CLAIM, command.write] : [command.write],
            );
          } catch (error) {
            if (command.discardWrites || sqlstateWithin(error) !== '25P02') {
              throw error;
            }
            command.aborted(error);
            break;
          }
          // Returning lets the application's transaction manager commit.
          return;
        case 'rollback':
          throw new RollBack();
      }
    }
  }

  /**
   * Sends `statements` in the transaction: in one round trip on its pg client when
   * `transactions.client` shows it, else one at a time through `transactions.query`. The first
   * that fails stops the rest.
   */
  private async send(statements: PipelineStatement[]): Promise<void> {
    const client = transactionClient(this.transactions, this.transaction);
    if (client) {
      await runPipeline(client, statements);
      return;
    }
    for (const { text, values } of statements) {
      await this.transactions.query(this.transaction, text, values ?? []);
    }
  }

  private close(reason: unknown): void {
    for (const left of this.inbox.close(reason)) {
      if (left.kind === 'run') {
        left.settle.reject(reason);
      }
    }
  }
}

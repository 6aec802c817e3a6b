import type { ClientBase } from 'pg';
import type { ClaimHandle } from '../../store/claim-result.interface';
import type {
  IdempotencyStepTransaction,
  RecordedStep,
} from '../../store/recovery-points.interface';
import { type PipelineResult, runPipeline } from '../driver/pipelined-query';
import type { IdempotencyTableLayout } from '../layout/table-layout';
import { followMovedRow } from './claim-row';

/** How a step's transaction ends, on the data layer that opened it. */
export interface StepTransactionEnds {
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
  /** Gives the connection back; with an error, the pool drops it. */
  release(error?: Error): void;
}

/**
 * A PostgreSQL transaction open for one step's work (see `IdempotencyStepTransaction`): the
 * step's writes go through `transaction`, the store's statements to the same connection
 * (`client`), and the recovery point is the last write before the commit.
 */
export class PgStepTransaction<TTx> implements IdempotencyStepTransaction<TTx> {
  private ended = false;

  constructor(
    readonly transaction: TTx,
    private readonly client: ClientBase,
    private readonly layout: IdempotencyTableLayout,
    private readonly ends: StepTransactionEnds,
  ) {}

  async commitWithStep(
    handle: ClaimHandle,
    index: number,
    step: RecordedStep,
    leaseMs: number,
  ): Promise<boolean> {
    let saved: PipelineResult;
    try {
      const results = await runPipeline(
        this.client,
        this.layout.stepInTransaction(handle, index, step, leaseMs),
      );
      saved = results[results.length - 1];
      if (saved.rowCount !== 1) {
        // Not this claim's any more, or its steps moved on: the step's writes go with it.
        await this.rollback();
        return false;
      }
      await this.ends.commit();
    } catch (error) {
      await this.rollback().catch(() => undefined);
      throw this.layout.explain(error);
    }
    this.end();
    // Only once committed: a rolled-back recording moved nothing.
    followMovedRow(handle, saved.rows);
    return true;
  }

  async rollback(): Promise<void> {
    if (this.ended) {
      return;
    }
    try {
      await this.ends.rollback();
    } catch (error) {
      // A connection whose transaction could not be ended is not given to anyone else.
      this.end(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    this.end();
  }

  private end(error?: Error): void {
    if (!this.ended) {
      this.ended = true;
      this.ends.release(error);
    }
  }
}

import { HandlerTransactionAbortedError } from '../../store/transactional-idempotency-store';

/**
 * What a failed write-and-commit of a transactional claim means, given `sqlstate`, the SQLSTATE of
 * the write on the claim's row when that is what failed (undefined otherwise). A write refused
 * because a failed statement of the handler had aborted the transaction ("commands ignored until
 * end of block", 25P02) is the handler's doing; a write that found no row (22012, see
 * `failingWithoutRow`) means the claim vanished from its own transaction (the handler deleted it,
 * or ended the transaction with its own COMMIT or ROLLBACK). Anything else is returned as it is.
 */
export function explainWriteFailure(
  error: unknown,
  sqlstate: string | undefined,
  status: number | null,
): unknown {
  if (sqlstate === '25P02') {
    return new HandlerTransactionAbortedError(status);
  }
  if (sqlstate === '22012') {
    return new Error('nestjs-idempotency: the claim vanished from its own transaction.', {
      cause: error,
    });
  }
  return error;
}

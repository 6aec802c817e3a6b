import type { IdempotencyException } from '../idempotency.exceptions';
import type { StoredResponse } from '../store/stored-response.interface';

/**
 * How an execution reads and writes the answer it sends, whatever carries it: an HTTP response
 * (`ResponseWriter`) or a message handler's reply (`MessageReplyWriter`). `reply` is the
 * transport's own object for the answer in the making.
 */
export interface ReplyWriter {
  /** The status the answer will be sent with. */
  statusOf(reply: unknown): number;
  /** The text stored for a handler's result, and sent in its place so that replays match it. */
  serialize(reply: unknown, value: unknown): string | undefined;
  /** Marks the answer as a JSON error body with `status`, which the module sends itself. */
  prepareJsonError(reply: unknown, status: number): void;
  /** The answer's values of the given (lower-case) headers, to store with it. */
  captureHeaders(reply: unknown, names: readonly string[]): Record<string, string>;
  /** Sets up a stored answer; returns the body to send. */
  replay(reply: unknown, stored: StoredResponse): string | undefined;
  /** Readies the answer for a refusal of the module's, before the exception is thrown. */
  prepareProblem(reply: unknown, exception: IdempotencyException): void;
}

import type { ReplyWriter } from '../execution/reply-writer';
import type { StoredResponse } from '../store/stored-response.interface';

/** A message handler's answer in the making: the status an HTTP answer would have. */
export class MessageReply {
  status = 200;
}

/**
 * The reply of a message handler, kept as JSON: the stored text is parsed back for the first
 * answer as for every replay, so that both carry the same value. A handler's thrown client error
 * is kept with its status, and sent again as an error.
 */
export class MessageReplyWriter implements ReplyWriter {
  statusOf(reply: unknown): number {
    return (reply as MessageReply).status;
  }

  serialize(_reply: unknown, value: unknown): string | undefined {
    return value === undefined ? undefined : (JSON.stringify(value) as string | undefined);
  }

  prepareJsonError(reply: unknown, status: number): void {
    (reply as MessageReply).status = status;
  }

  captureHeaders(): Record<string, string> {
    return {};
  }

  replay(reply: unknown, stored: StoredResponse): string | undefined {
    (reply as MessageReply).status = stored.status;
    return stored.body === null ? undefined : stored.body.toString('utf8');
  }

  prepareProblem(): void {
    // A refusal travels as the error itself (see MessageIdempotency): nothing to set up.
  }
}

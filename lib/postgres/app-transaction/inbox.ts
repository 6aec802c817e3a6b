/**
 * A queue of messages for one reader that awaits them one at a time. Once closed, the reader's
 * waits and the senders' sends fail with the reason given.
 */
export class Inbox<M> {
  private readonly queued: M[] = [];
  private waiting: { resolve: (message: M) => void; reject: (error: unknown) => void } | null =
    null;
  private closedWith: { reason: unknown } | null = null;

  get closed(): boolean {
    return this.closedWith !== null;
  }

  send(message: M): void {
    if (this.closedWith) {
      throw this.closedWith.reason;
    }
    if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve(message);
      return;
    }
    this.queued.push(message);
  }

  take(): Promise<M> {
    const next = this.queued.shift();
    if (next !== undefined) {
      return Promise.resolve(next);
    }
    if (this.closedWith) {
      return Promise.reject(this.closedWith.reason);
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** Closes the inbox; returns the messages nobody took, for their senders to be told. */
  close(reason: unknown): M[] {
    if (this.closedWith) {
      return [];
    }
    this.closedWith = { reason };
    this.waiting?.reject(reason);
    this.waiting = null;
    return this.queued.splice(0);
  }
}

import type { HttpAdapterHost } from '@nestjs/core';
import { PROBLEM_CONTENT_TYPE, REPLAYED_HEADER } from '../idempotency.constants';
import type { ReplyWriter } from '../execution/reply-writer';
import type { IdempotencyException } from '../idempotency.exceptions';
import type { StoredResponse } from '../store/stored-response.interface';

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/**
 * Reads and writes responses through Nest's HTTP adapter, so one code path serves Express and
 * Fastify.
 */
export class ResponseWriter implements ReplyWriter {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  private get adapter() {
    return this.adapterHost.httpAdapter;
  }

  /** The status the response will be sent with (set by Nest or the handler before now). */
  statusOf(response: unknown): number {
    return (response as { statusCode: number }).statusCode;
  }

  /**
   * Serializes a handler's result as the platform would by default, and sets the Content-Type the
   * platform would pick; the text is then sent as the body, so that the first answer and every
   * replay carry the same bytes.
   */
  serialize(response: unknown, value: unknown): string | undefined {
    if (value === undefined || value === null) {
      return undefined;
    }
    const hasType = this.adapter.getHeader(response, 'Content-Type') !== undefined;
    if (typeof value === 'object') {
      const text = JSON.stringify(value) as string | undefined;
      if (text !== undefined && !hasType) {
        this.adapter.setHeader(response, 'Content-Type', JSON_TYPE);
      }
      return text;
    }
    if (!hasType) {
      this.adapter.setHeader(response, 'Content-Type', TEXT_TYPE);
    }
    return String(value);
  }

  /** Sets the status and JSON type of an error body the module sends itself. */
  prepareJsonError(response: unknown, status: number): void {
    this.adapter.status(response, status);
    this.adapter.setHeader(response, 'Content-Type', JSON_TYPE);
  }

  /** The response's values of the given (lower-case) headers. */
  captureHeaders(response: unknown, names: readonly string[]): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const name of names) {
      const value: unknown = this.adapter.getHeader(response, name);
      if (value !== undefined && value !== null) {
        headers[name] = Array.isArray(value) ? value.join(', ') : String(value);
      }
    }
    return headers;
  }

  /** Sets a stored response's status and headers; returns the body to send. */
  replay(response: unknown, stored: StoredResponse): string | undefined {
    this.adapter.status(response, stored.status);
    for (const [name, value] of Object.entries(stored.headers)) {
      this.adapter.setHeader(response, name, value);
    }
    this.adapter.setHeader(response, REPLAYED_HEADER, 'true');
    return stored.body === null ? undefined : stored.body.toString('utf8');
  }

  /** Sets the problem+json type and the exception's headers before it is thrown. */
  prepareProblem(response: unknown, exception: IdempotencyException): void {
    this.adapter.setHeader(response, 'Content-Type', PROBLEM_CONTENT_TYPE);
    for (const [name, value] of Object.entries(exception.headers)) {
      this.adapter.setHeader(response, name, value);
    }
  }
}

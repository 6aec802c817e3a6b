import { HttpException, HttpStatus } from '@nestjs/common';
import { PROBLEM_TYPE_BASE } from './idempotency.constants';

/** An RFC 9457 problem details document. */
export interface ProblemDetails {
  /** Stable URI naming the kind of problem. */
  type: string;
  /** Short summary of the kind of problem; the same for every occurrence. */
  title: string;
  /** HTTP status code. */
  status: number;
  /** What went wrong this time. */
  detail: string;
  /** Extension members. */
  [extension: string]: unknown;
}

/**
 * Base of every error the module produces. Its response body is an RFC 9457 problem document;
 * the interceptor sends it as `application/problem+json` along with `headers`.
 */
export abstract class IdempotencyException extends HttpException {
  /** Extra response headers for this error (for example `Retry-After`). */
  readonly headers: Readonly<Record<string, string>>;

  protected constructor(
    slug: string,
    title: string,
    status: HttpStatus,
    detail: string,
    headers: Record<string, string> = {},
    extensions: Record<string, unknown> = {},
  ) {
    const problem: ProblemDetails = {
      type: `${PROBLEM_TYPE_BASE}${slug}`,
      title,
      status,
      detail,
      ...extensions,
    };
    super(problem, status);
    this.headers = headers;
  }
}

/** 400: the route requires an idempotency key and the request has none. */
export class IdempotencyKeyMissingException extends IdempotencyException {
  /** `detail` replaces the sentence naming the header (a message handler's key is no header). */
  constructor(headerName: string, detail = `This operation requires an ${headerName} header.`) {
    super('key-missing', 'Idempotency key missing', HttpStatus.BAD_REQUEST, detail);
  }
}

/** 400: the key header is malformed (length, characters, quoting, or repeated). */
export class IdempotencyKeyInvalidException extends IdempotencyException {
  constructor(reason: string) {
    super(
      'key-invalid',
      'Idempotency key invalid',
      HttpStatus.BAD_REQUEST,
      `${reason} A key is 1 to 255 printable ASCII characters, bare or as a quoted string.`,
    );
  }
}

/** 400: the request cannot be fingerprinted (a body nested absurdly deep). */
export class IdempotencyRequestNotFingerprintableException extends IdempotencyException {
  constructor(reason: string) {
    super(
      'request-not-fingerprintable',
      'Request cannot be fingerprinted',
      HttpStatus.BAD_REQUEST,
      `${reason} The request was not executed.`,
    );
  }
}

/**
 * 500: the default scope cannot tell whose request this is (`request.user` has neither `id` nor
 * `sub`), so the request is refused rather than stored where another principal could replay it.
 * A configuration error of the application: set the `scope` option.
 */
export class IdempotencyScopeUnresolvedException extends IdempotencyException {
  constructor() {
    super(
      'scope-unresolved',
      'Idempotency scope unresolved',
      HttpStatus.INTERNAL_SERVER_ERROR,
      'The server cannot tell which principal this request belongs to: request.user has neither an id nor a sub. Configure the scope option of the idempotency module. The request was not executed.',
    );
  }
}

/** 409: another request with the same key is still being processed. */
export class IdempotencyKeyInFlightException extends IdempotencyException {
  constructor(retryAfterMs: number) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(
      'key-in-flight',
      'Request with this idempotency key in progress',
      HttpStatus.CONFLICT,
      `A request with this key is still being processed. Retry in ${seconds} s to get its result.`,
      { 'Retry-After': String(seconds) },
    );
  }
}

/** 422: the key was used before with a different request. */
export class IdempotencyKeyMismatchException extends IdempotencyException {
  constructor() {
    super(
      'key-mismatch',
      'Idempotency key reused with a different request',
      HttpStatus.UNPROCESSABLE_ENTITY,
      'This key was already used with a different method, path or body. Use a new key for a new request.',
    );
  }
}

/**
 * 410: the request with this key ran, but its response could not be stored (a stream, a file,
 * `@Res()` without passthrough, or a body over the size limit). It will not run again; 410 says so
 * permanently, where 409 would invite a retry loop.
 */
export class IdempotencyResponseNotReplayableException extends IdempotencyException {
  constructor(originalStatus: number | null) {
    super(
      'response-not-replayable',
      'Response not replayable',
      HttpStatus.GONE,
      'The request with this key was executed, but its response could not be stored for replay. It will not be executed again.',
      {},
      originalStatus === null ? {} : { originalStatus },
    );
  }
}

/** 503: the idempotency store failed or timed out, so the request was not executed. */
export class IdempotencyStoreUnavailableException extends IdempotencyException {
  constructor() {
    super(
      'store-unavailable',
      'Idempotency store unavailable',
      HttpStatus.SERVICE_UNAVAILABLE,
      'The request was not executed because its idempotency key could not be recorded. It is safe to retry.',
      { 'Retry-After': '1' },
    );
  }
}

/**
 * 500: the handler's steps do not follow the ones an earlier attempt of this key recorded (another
 * name or order, a step asked for twice, or two at once). Steps must be the same fixed sequence
 * on every attempt; the request stops rather than mix old results with new ones.
 */
export class IdempotencyStepsMismatchException extends IdempotencyException {
  constructor(reason: string) {
    super(
      'steps-mismatch',
      'Idempotent steps do not match',
      HttpStatus.INTERNAL_SERVER_ERROR,
      `${reason} The request stopped there; retrying it with the same key stops there too.`,
    );
  }
}

/**
 * 500: a step's result is larger, as JSON, than `steps.maxResultBytes`, or is not JSON at all. The
 * step ran but was not recorded: a retry runs it again, with the same step key.
 */
export class IdempotencyStepResultNotStorableException extends IdempotencyException {
  constructor(step: string, reason: string) {
    super(
      'step-result-not-storable',
      'Step result cannot be recorded',
      HttpStatus.INTERNAL_SERVER_ERROR,
      `The result of step "${step}" ${reason}, so it was not recorded.`,
    );
  }
}

/**
 * 500: this route cannot record steps (`IdempotencySteps`): it does not fingerprint its requests,
 * or it writes its own response (`@Res()`). The step did not run.
 */
export class IdempotencyStepsUnavailableException extends IdempotencyException {
  constructor(reason: string) {
    super(
      'steps-unavailable',
      'Idempotent steps unavailable on this route',
      HttpStatus.INTERNAL_SERVER_ERROR,
      `${reason} The step did not run.`,
    );
  }
}

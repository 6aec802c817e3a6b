import { HttpStatus, RequestMethod, type Type } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA } from '@nestjs/common/constants';
import type { CoveredRoute } from '../http/covered-routes';
import { MAX_KEY_LENGTH } from '../protocol/idempotency-key';
import type { SwaggerApi } from './load-swagger';
import { problemDetailsModel } from './problem-details.model';

/** What the documentation of one route depends on. */
export interface DocumentedRoute {
  /** The key header's name, as configured. */
  headerName: string;
  required: boolean;
  /** Whether a changed request with the same key gets 422 (fingerprinting on). */
  fingerprinted: boolean;
}

/** A route documented once, even when several registrations cover it. */
const DOCUMENTED = Symbol('nestjs-idempotency:openapi-documented');

type ResponseEntry = Record<string, unknown> & { headers?: Record<string, unknown> };

const RETRY_AFTER = {
  description: 'Seconds after which a retry with the same key is worth sending.',
  schema: { type: 'integer', minimum: 1 },
};

const REPLAYED = {
  description:
    '`true` when this response is the stored response of an earlier request with the same key, replayed; absent on the request that ran.',
  schema: { type: 'string', enum: ['true'] },
};

/**
 * Adds to one route's OpenAPI metadata what the module does to it: the key header, the
 * `Idempotent-Replayed` header on its success responses, and the problem responses it can give.
 * A status the route already documents keeps its own description first and its own schema.
 */
export function documentRoute(
  swagger: SwaggerApi,
  controller: Type,
  { method, handler }: CoveredRoute,
  route: DocumentedRoute,
): void {
  if (Reflect.getMetadata(DOCUMENTED, handler) === true) {
    return;
  }
  Reflect.defineMetadata(DOCUMENTED, true, handler);
  const prototype = controller.prototype as object;
  const descriptor = Object.getOwnPropertyDescriptor(prototype, method) ?? {
    value: handler,
  };
  swagger.ApiHeader({
    name: route.headerName,
    required: route.required,
    description: route.required
      ? 'A key the client chooses for this operation (a UUID, say), the same on every retry of it. The first request with a key runs; every retry gets its stored response.'
      : 'Optional: with it, the first request with a key runs and every retry gets its stored response; without it, the request runs unprotected.',
    schema: {
      type: 'string',
      minLength: 1,
      maxLength: MAX_KEY_LENGTH,
      pattern: '^[\\x20-\\x7E]+$',
    },
    example: '6f1c2a7e-4b1d-4c59-9a57-0d0c3f6b8a21',
  })(prototype, method, descriptor);
  const model = problemDetailsModel(swagger);
  swagger.ApiExtraModels(model)(prototype, method, descriptor);

  const key = swagger.DECORATORS.API_RESPONSE;
  const ofClass = (Reflect.getMetadata(key, controller) ?? {}) as Record<string, ResponseEntry>;
  const responses = {
    ...((Reflect.getMetadata(key, handler) ?? {}) as Record<string, ResponseEntry>),
  };
  const isSuccess = (status: string) => Number.isNaN(Number(status)) || Number(status) < 400;
  const successes = [...new Set([...Object.keys(ofClass), ...Object.keys(responses)])].filter(
    isSuccess,
  );
  if (successes.length === 0) {
    // As swagger documents a route without responses of its own.
    successes.push(String(defaultStatus(handler)));
    responses[successes[0]] = { description: '' };
  }
  for (const status of successes) {
    const entry = { ...ofClass[status], ...responses[status] };
    responses[status] = {
      ...entry,
      headers: { ...entry.headers, 'Idempotent-Replayed': REPLAYED },
    };
  }

  const problem = (description: string, retryAfter = false): ResponseEntry => ({
    description,
    ...(retryAfter ? { headers: { 'Retry-After': RETRY_AFTER } } : {}),
    content: { 'application/problem+json': { schema: { $ref: swagger.getSchemaPath(model) } } },
  });
  const problems: [number, ResponseEntry][] = [
    [
      HttpStatus.BAD_REQUEST,
      problem(
        `The idempotency key is ${route.required ? 'missing, ' : ''}malformed (1 to ${MAX_KEY_LENGTH} printable ASCII characters, one header), or the body is nested too deep to fingerprint (key-${route.required ? 'missing, key-' : ''}invalid, request-not-fingerprintable). Nothing ran.`,
      ),
    ],
    [
      HttpStatus.CONFLICT,
      problem(
        'A request with the same key is still running (key-in-flight): retry after Retry-After to get its response. Nothing ran.',
        true,
      ),
    ],
    [
      HttpStatus.GONE,
      problem(
        'The request with this key ran, but its response could not be stored (response-not-replayable); it will not run again.',
      ),
    ],
    [
      HttpStatus.UNPROCESSABLE_ENTITY,
      problem(
        'The key was used before with a different method, path or body (key-mismatch). Nothing ran.',
      ),
    ],
    [
      HttpStatus.SERVICE_UNAVAILABLE,
      problem(
        'The idempotency store is unavailable (store-unavailable). Nothing ran; retrying is safe.',
        true,
      ),
    ],
  ];
  for (const [status, entry] of problems) {
    if (status === HttpStatus.UNPROCESSABLE_ENTITY && !route.fingerprinted) {
      continue;
    }
    const own = responses[status] ?? ofClass[status];
    if (!own) {
      responses[status] = entry;
      continue;
    }
    // The route's own body schema stays; a status it documents without one gets the problem's.
    const ownBody = own.content !== undefined || own.type !== undefined || own.schema !== undefined;
    responses[status] = {
      ...(ownBody ? {} : { content: entry.content }),
      ...own,
      headers: { ...entry.headers, ...own.headers },
      description: [own.description, entry.description].filter(Boolean).join('\n\n'),
    };
  }
  Reflect.defineMetadata(key, responses, handler);
}

/** The status Nest answers a route with when the handler returns: `@HttpCode()`, else 201 or 200. */
function defaultStatus(handler: object): number {
  const code = Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined;
  if (code !== undefined) {
    return code;
  }
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  return method === RequestMethod.POST ? HttpStatus.CREATED : HttpStatus.OK;
}

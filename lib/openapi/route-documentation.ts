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

/**
 * The route's OpenAPI metadata before the module added to it, and who added it. An application
 * made again in the same process (tests do) documents its routes afresh, from these.
 */
const ORIGINAL = Symbol('nestjs-idempotency:openapi-original');

interface Original {
  /** The application (its modules) that documented the route last. */
  app: object;
  metadata: Record<string, unknown>;
}

/** The metadata keys the module adds to: the parameters, the extra models, the responses. */
const touchedKeys = ({ DECORATORS }: SwaggerApi) => [
  DECORATORS.API_PARAMETERS,
  DECORATORS.API_EXTRA_MODELS,
  DECORATORS.API_RESPONSE,
];

/** The routes each application documented, to take back when it closes. */
const documentedIn = new WeakMap<object, Set<object>>();

/**
 * Takes back what an earlier application in this process added to the route, unless `app` is
 * that application: an application that does not cover the route must not show its documentation.
 */
export function forgetOtherApps(swagger: SwaggerApi, handler: object, app: object): void {
  const original = Reflect.getMetadata(ORIGINAL, handler) as Original | undefined;
  if (original && original.app !== app) {
    restore(swagger, handler, original);
  }
}

/** Takes back what `app` added to its routes (as it closes). */
export function forgetApp(swagger: SwaggerApi, app: object): void {
  for (const handler of documentedIn.get(app) ?? []) {
    const original = Reflect.getMetadata(ORIGINAL, handler) as Original | undefined;
    if (original?.app === app) {
      restore(swagger, handler, original);
    }
  }
  documentedIn.delete(app);
}

function restore(swagger: SwaggerApi, handler: object, original: Original): void {
  for (const key of touchedKeys(swagger)) {
    if (original.metadata[key] === undefined) {
      Reflect.deleteMetadata(key, handler);
    } else {
      Reflect.defineMetadata(key, original.metadata[key], handler);
    }
  }
  Reflect.deleteMetadata(ORIGINAL, handler);
}

type ResponseEntry = Record<string, unknown> & { headers?: Record<string, unknown> };

/** The name swagger's CLI plugin gives the static method holding what it inferred. */
const PLUGIN_METADATA = '_OPENAPI_METADATA_FACTORY';
const OPERATION_FIELDS = new Set(['summary', 'deprecated', 'tags', 'description']);

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
 * A status the route already documents keeps its own description first and its own schema. The
 * caller has taken back what another application added to the route (`forgetOtherApps`).
 */
export function documentRoute(
  swagger: SwaggerApi,
  controller: Type,
  { method, handler }: CoveredRoute,
  app: object,
  route: DocumentedRoute,
): void {
  if (Reflect.hasMetadata(ORIGINAL, handler)) {
    // Already documented in this application, by the registration its module resolves to.
    return;
  }
  const metadata = Object.fromEntries(
    touchedKeys(swagger).map((key) => [key, Reflect.getMetadata(key, handler) as unknown]),
  );
  Reflect.defineMetadata(ORIGINAL, { app, metadata } satisfies Original, handler);
  documentedIn.set(app, (documentedIn.get(app) ?? new Set<object>()).add(handler));
  const prototype = controller.prototype as object;
  const descriptor = Object.getOwnPropertyDescriptor(prototype, method) ?? {
    value: handler,
  };
  applyPluginResponses(swagger, controller, method);
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

  const ofClass = (Reflect.getMetadata(swagger.DECORATORS.API_RESPONSE, controller) ??
    {}) as Record<string, ResponseEntry>;
  const responses = {
    ...((Reflect.getMetadata(swagger.DECORATORS.API_RESPONSE, handler) ?? {}) as Record<
      string,
      ResponseEntry
    >),
  };
  // As swagger reads them: 'default' counts as a success, and without one of its own a route
  // gets its default status. Only numbered successes carry the replay header.
  const isNumberedSuccess = (status: string) => Number(status) < 400;
  if (!Object.keys(responses).some((status) => status === 'default' || isNumberedSuccess(status))) {
    responses[String(defaultStatus(handler))] = { description: '' };
  }
  const successes = new Set([...Object.keys(ofClass), ...Object.keys(responses)]);
  for (const status of [...successes].filter(isNumberedSuccess)) {
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
        `The idempotency key is ${route.required ? 'missing or ' : ''}malformed (1 to ${MAX_KEY_LENGTH} printable ASCII characters, one header)${route.fingerprinted ? ', or the body is nested too deep to fingerprint' : ''}: ${[...(route.required ? ['key-missing'] : []), 'key-invalid', ...(route.fingerprinted ? ['request-not-fingerprintable'] : [])].join(', ')}. Nothing ran.`,
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
  Reflect.defineMetadata(swagger.DECORATORS.API_RESPONSE, responses, handler);
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

/**
 * What swagger's CLI plugin inferred for the route (its return type, its status), applied as
 * swagger's own explorer applies it when it reads the document, so that the success response the
 * module adds a header to is the route's own: by the class whose prototype holds the method, and
 * not at all when the route documents a success (or default) response itself.
 */
function applyPluginResponses(swagger: SwaggerApi, controller: Type, method: string): void {
  for (
    let prototype = controller.prototype as object | null;
    prototype && prototype !== Object.prototype;
    prototype = Reflect.getPrototypeOf(prototype)
  ) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, method);
    const type = (prototype as { constructor?: unknown }).constructor;
    if (!descriptor || typeof descriptor.value !== 'function') {
      continue;
    }
    if (
      typeof type !== 'function' ||
      !Object.prototype.hasOwnProperty.call(type, PLUGIN_METADATA)
    ) {
      return;
    }
    const factory = (type as unknown as Record<string, () => Record<string, unknown>>)[
      PLUGIN_METADATA
    ];
    const inferred = factory()[method] as
      (Record<string, unknown> & { responses?: Record<string, unknown>[] }) | undefined;
    if (!inferred) {
      return;
    }
    const { responses = [], ...rest } = inferred;
    // The operation's own fields are swagger's to apply; the rest describes the success response.
    const meta = Object.fromEntries(
      Object.entries(rest).filter(([field]) => !OPERATION_FIELDS.has(field)),
    );
    const existing = (Reflect.getMetadata(swagger.DECORATORS.API_RESPONSE, descriptor.value) ??
      {}) as Record<string, unknown>;
    const documentsSuccess = Object.keys(existing).some(
      (status) => Number.isNaN(Number(status)) || Number(status) < 400,
    );
    if ((Object.keys(meta).length === 0 && responses.length === 0) || documentsSuccess) {
      return;
    }
    const entries = [
      { ...meta, status: meta.status ?? defaultStatus(descriptor.value as object) },
      ...responses,
    ];
    for (const entry of entries.filter(
      (response) => existing[String(response.status)] === undefined,
    )) {
      swagger.ApiResponse(entry as Parameters<SwaggerApi['ApiResponse']>[0])(
        prototype,
        method,
        descriptor,
      );
    }
    return;
  }
}

import {
  Body,
  Controller,
  Get,
  HttpCode,
  type INestApplication,
  Module,
  Post,
  Put,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiProperty,
  DocumentBuilder,
  type OpenAPIObject,
  SwaggerModule,
} from '@nestjs/swagger';
import { IdempotencyModule } from '../../../lib/idempotency.module';
import { Idempotent, SkipIdempotency } from '../../../lib/idempotent.decorator';
import { InMemoryIdempotencyStore } from '../../../lib/testing';

/*
 * The OpenAPI document of a small app, as SwaggerModule builds it: every route the module covers
 * shows its key header, the replay header on its success responses and its problem responses,
 * without a decorator of its own; routes it does not cover are left alone.
 */

class PaymentDto {
  @ApiProperty()
  id!: string;
}

@Controller('payments')
class PaymentsController {
  @Post()
  @Idempotent()
  create(@Body() _body: unknown) {
    return { id: 'p' };
  }

  @Post('optional')
  @Idempotent({ required: false, fingerprint: { enabled: false } })
  optional() {
    return { id: 'p' };
  }

  @Post('typed')
  @Idempotent()
  @ApiCreatedResponse({ type: PaymentDto, description: 'The payment.' })
  @ApiBadRequestResponse({ description: 'The body is invalid.' })
  typed() {
    return { id: 'p' };
  }

  @Put(':id')
  @Idempotent()
  @HttpCode(200)
  replace() {
    return { id: 'p' };
  }

  @Get()
  list() {
    return [];
  }
}

/** A success response declared on the class, and one the CLI plugin inferred. */
@Controller('refunds')
@ApiOkResponse({ description: 'Listed.' })
class RefundsController {
  /** What swagger's CLI plugin compiles into a controller: the return type it read. */
  static _OPENAPI_METADATA_FACTORY() {
    return { create: { status: 201, type: PaymentDto } };
  }

  @Post()
  @Idempotent()
  create() {
    return { id: 'r' };
  }
}

/** Covered by the global interceptor's `autoMethods`. */
@Controller('orders')
class OrdersController {
  @Post()
  create() {
    return {};
  }

  @Post('webhook')
  @SkipIdempotency()
  webhook() {
    return {};
  }

  @Get()
  list() {
    return [];
  }
}

@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      useGlobalInterceptor: true,
      autoMethods: ['POST'],
    }),
  ],
  controllers: [PaymentsController, OrdersController, RefundsController],
})
class AppModule {}

/** The same controllers under a registration without the global interceptor, another header. */
@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      autoMethods: ['POST'],
      headerName: 'X-Request-Key',
    }),
  ],
  controllers: [PaymentsController, OrdersController],
})
class OtherAppModule {}

@Controller('a')
class AController {
  @Post()
  @Idempotent()
  create() {
    return {};
  }
}

@Controller('b')
class BController {
  @Post()
  @Idempotent()
  create() {
    return {};
  }
}

@Controller('c')
class CController {
  @Post()
  @Idempotent()
  create() {
    return {};
  }
}

/** A registration that a shared module imports and re-exports. */
@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      isGlobal: false,
      headerName: 'C-Key',
    }),
  ],
  exports: [IdempotencyModule],
})
class SharedModule {}

@Module({ imports: [SharedModule], controllers: [CController] })
class CModule {}

/** Two registrations, each in its own feature module (`isGlobal: false`). */
@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      isGlobal: false,
      headerName: 'A-Key',
    }),
  ],
  controllers: [AController],
})
class AModule {}

@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      isGlobal: false,
      headerName: 'B-Key',
    }),
  ],
  controllers: [BController],
})
class BModule {}

@Module({ imports: [AModule, BModule, CModule] })
class FeaturesModule {}

/** A global interceptor runs first, so it handles the routes of the feature registration too. */
@Module({
  imports: [
    IdempotencyModule.forRoot({
      store: new InMemoryIdempotencyStore(),
      useGlobalInterceptor: true,
      headerName: 'G-Key',
    }),
    AModule,
  ],
})
class GlobalFirstModule {}

/** What the CLI plugin inferred, on a base class; a subclass inherits the route. */
class BaseInvoicesController {
  static _OPENAPI_METADATA_FACTORY(): Record<string, unknown> {
    return { create: { type: PaymentDto }, accept: { type: PaymentDto } };
  }

  @Post()
  @Idempotent()
  create() {
    return { id: 'i' };
  }

  @Post('accept')
  @Idempotent()
  @ApiAcceptedResponse({ description: 'Accepted.' })
  accept() {
    return { id: 'i' };
  }
}

@Controller('invoices')
class InvoicesController extends BaseInvoicesController {
  static override _OPENAPI_METADATA_FACTORY(): Record<string, unknown> {
    return {};
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [InvoicesController],
})
class InvoicesModule {}

const apps: INestApplication[] = [];
let document: OpenAPIObject;
let otherDocument: OpenAPIObject;
let featuresDocument: OpenAPIObject;
let globalFirstDocument: OpenAPIObject;
let invoicesDocument: OpenAPIObject;

/** As an application's main.ts does it: the document is made before init() and listen(). */
async function documentOf(module: Type): Promise<OpenAPIObject> {
  const app = await NestFactory.create(module, new ExpressAdapter(), { logger: false });
  apps.push(app);
  return SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle('payments').setVersion('1').build(),
  );
}

beforeAll(async () => {
  // One after the other, as a test suite makes its apps: each document is the app's own.
  document = await documentOf(AppModule);
  otherDocument = await documentOf(OtherAppModule);
  featuresDocument = await documentOf(FeaturesModule);
  globalFirstDocument = await documentOf(GlobalFirstModule);
  invoicesDocument = await documentOf(InvoicesModule);
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

type Operation = {
  parameters?: { name: string; in: string; required?: boolean; schema?: Record<string, unknown> }[];
  responses: Record<
    string,
    {
      description: string;
      headers?: Record<string, unknown>;
      content?: Record<string, { schema: unknown }>;
    }
  >;
};
const operation = (path: string, method: 'get' | 'post' | 'put', of = document) =>
  (of.paths[path] as Record<string, Operation>)[method];
const keyHeader = (op: Operation, name = 'Idempotency-Key') =>
  op.parameters?.find((p) => p.in === 'header' && p.name === name);
const PROBLEM = { $ref: '#/components/schemas/IdempotencyProblemDetails' };

it('matches the committed document', () => {
  expect(document).toMatchSnapshot();
});

it('documents the key header of an @Idempotent() route, required, with its limits', () => {
  expect(keyHeader(operation('/payments', 'post'))).toMatchObject({
    required: true,
    schema: { type: 'string', minLength: 1, maxLength: 255 },
  });
});

it('adds Idempotent-Replayed to the success response, and the problem responses', () => {
  const { responses } = operation('/payments', 'post');
  expect(responses['201'].headers).toHaveProperty('Idempotent-Replayed');
  for (const status of ['400', '409', '410', '422', '503']) {
    expect(responses[status].content).toEqual({ 'application/problem+json': { schema: PROBLEM } });
  }
  expect(responses['409'].headers).toHaveProperty('Retry-After');
  expect(responses['503'].headers).toHaveProperty('Retry-After');
  expect(responses['400'].headers).toBeUndefined();
});

it('follows the route: an optional key, no 422 without fingerprints, its own success status', () => {
  const optional = operation('/payments/optional', 'post');
  expect(keyHeader(optional)?.required).toBe(false);
  expect(optional.responses['422']).toBeUndefined();
  const replace = operation('/payments/{id}', 'put');
  expect(Object.keys(replace.responses).filter((s) => Number(s) < 400)).toEqual(['200']);
  expect(replace.responses['200'].headers).toHaveProperty('Idempotent-Replayed');
});

it("keeps the route's own responses first: its schema, and its description before the module's", () => {
  const { responses } = operation('/payments/typed', 'post');
  expect(responses['201']).toMatchObject({
    description: 'The payment.',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/PaymentDto' } } },
  });
  expect(responses['201'].headers).toHaveProperty('Idempotent-Replayed');
  expect(responses['400'].description).toMatch(/^The body is invalid\.\n\nThe idempotency key/);
  expect(responses['400'].content).toEqual({ 'application/problem+json': { schema: PROBLEM } });
});

it('documents the autoMethods routes of the global interceptor, and leaves the others alone', () => {
  expect(keyHeader(operation('/orders', 'post'))?.required).toBe(false);
  expect(keyHeader(operation('/orders/webhook', 'post'))).toBeUndefined();
  expect(keyHeader(operation('/orders', 'get'))).toBeUndefined();
  expect(keyHeader(operation('/payments', 'get'))).toBeUndefined();
  expect(operation('/orders/webhook', 'post').responses['409']).toBeUndefined();
});

it('keeps success responses from the class and from the CLI plugin, with the replay header', () => {
  const { responses } = operation('/refunds', 'post');
  expect(responses['200']).toMatchObject({ description: 'Listed.' });
  expect(responses['201']).toMatchObject({
    content: { 'application/json': { schema: { $ref: '#/components/schemas/PaymentDto' } } },
  });
  for (const status of ['200', '201']) {
    expect(responses[status].headers).toHaveProperty('Idempotent-Replayed');
  }
});

it("documents each app's own settings, and no autoMethods route without the global interceptor", () => {
  const create = operation('/payments', 'post', otherDocument);
  expect(keyHeader(create, 'X-Request-Key')?.required).toBe(true);
  expect(keyHeader(create)).toBeUndefined();
  expect(create.parameters?.filter((p) => p.in === 'header')).toHaveLength(1);
  expect(keyHeader(operation('/orders', 'post', otherDocument), 'X-Request-Key')).toBeUndefined();
  expect(operation('/orders', 'post', otherDocument).responses['409']).toBeUndefined();
});

it('documents each route with the registration its module imports', () => {
  const headers = (path: string) =>
    operation(path, 'post', featuresDocument)
      .parameters?.filter((p) => p.in === 'header')
      .map((p) => p.name);
  expect(headers('/a')).toEqual(['A-Key']);
  expect(headers('/b')).toEqual(['B-Key']);
});

it('documents a route with the registration its module gets through a re-export', () => {
  const headers = operation('/c', 'post', featuresDocument)
    .parameters?.filter((p) => p.in === 'header')
    .map((p) => p.name);
  expect(headers).toEqual(['C-Key']);
});

it('documents every decorated route with the global interceptor, which handles them first', () => {
  const headers = operation('/a', 'post', globalFirstDocument)
    .parameters?.filter((p) => p.in === 'header')
    .map((p) => p.name);
  expect(headers).toEqual(['G-Key']);
});

it("applies the CLI plugin's inference as swagger does: inherited, and not over a route's own success", () => {
  const create = operation('/invoices', 'post', invoicesDocument).responses;
  expect(create['201']).toMatchObject({
    content: { 'application/json': { schema: { $ref: '#/components/schemas/PaymentDto' } } },
    headers: { 'Idempotent-Replayed': expect.any(Object) },
  });
  const accept = operation('/invoices/accept', 'post', invoicesDocument).responses;
  expect(Object.keys(accept).filter((status) => Number(status) < 400)).toEqual(['202']);
  expect(accept['202'].headers).toHaveProperty('Idempotent-Replayed');
});

it('takes its documentation back when the application closes', async () => {
  @Controller('late')
  class LateController {
    @Post()
    create() {
      return {};
    }
  }
  @Module({
    imports: [
      IdempotencyModule.forRoot({
        store: new InMemoryIdempotencyStore(),
        useGlobalInterceptor: true,
        autoMethods: ['POST'],
      }),
    ],
    controllers: [LateController],
  })
  class WithModule {}
  @Module({ controllers: [LateController] })
  class WithoutModule {}

  const first = await NestFactory.create(WithModule, new ExpressAdapter(), { logger: false });
  const documented = SwaggerModule.createDocument(first, new DocumentBuilder().build());
  expect(keyHeader(operation('/late', 'post', documented))).toBeDefined();
  await first.close();
  const second = await NestFactory.create(WithoutModule, new ExpressAdapter(), { logger: false });
  const plain = SwaggerModule.createDocument(second, new DocumentBuilder().build());
  await second.close();
  expect(keyHeader(operation('/late', 'post', plain))).toBeUndefined();
  expect(operation('/late', 'post', plain).responses['409']).toBeUndefined();
});

it('shares one problem details schema, named so as not to take over an application DTO', () => {
  expect(document.components?.schemas?.IdempotencyProblemDetails).toMatchObject({
    type: 'object',
    properties: {
      type: { type: 'string' },
      title: { type: 'string' },
      status: { type: 'number' },
      detail: { type: 'string' },
      originalStatus: { type: 'number' },
    },
    required: ['type', 'title', 'status', 'detail'],
  });
});

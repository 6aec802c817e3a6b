import type { Logger } from '@nestjs/common';
import type * as Swagger from '@nestjs/swagger';
import { loadOptionalPeer } from '../optional-peer';

/** The parts of `@nestjs/swagger` the module uses to document its routes. */
export type SwaggerApi = Pick<
  typeof Swagger,
  'ApiExtraModels' | 'ApiHeader' | 'ApiProperty' | 'ApiResponse' | 'DECORATORS' | 'getSchemaPath'
>;

let loading: Promise<SwaggerApi | null> | undefined;

/**
 * `@nestjs/swagger` when the application has it installed, else null. Imported on first use, so
 * that an application without it neither needs it nor loads it. Any other failure to load it is
 * logged, and the routes go undocumented: documentation never stops an application's start.
 */
export function loadSwagger(logger: Logger): Promise<SwaggerApi | null> {
  loading ??= loadOptionalPeer<SwaggerApi>(
    '@nestjs/swagger',
    () => import('@nestjs/swagger'),
    'the idempotent routes are not documented in OpenAPI',
    logger,
  );
  return loading;
}

import type { Logger } from '@nestjs/common';
import type * as Swagger from '@nestjs/swagger';
import { isModuleNotFound } from '../optional-peer';

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
  loading ??= import('@nestjs/swagger').then(
    (swagger) => swagger as SwaggerApi,
    (error: unknown) => {
      if (!isModuleNotFound(error, '@nestjs/swagger')) {
        logger.warn(
          `@nestjs/swagger is installed but could not be loaded, so the idempotent routes are not documented in OpenAPI: ${String(error)}`,
        );
      }
      return null;
    },
  );
  return loading;
}

import type * as Swagger from '@nestjs/swagger';

/** The parts of `@nestjs/swagger` the module uses to document its routes. */
export type SwaggerApi = Pick<
  typeof Swagger,
  'ApiExtraModels' | 'ApiHeader' | 'ApiProperty' | 'ApiResponse' | 'DECORATORS' | 'getSchemaPath'
>;

let loading: Promise<SwaggerApi | null> | undefined;

/**
 * `@nestjs/swagger` when the application has it installed, else null. Imported on first use, so
 * that an application without it neither needs it nor loads it; an error other than its absence
 * (a broken install) is thrown.
 */
export function loadSwagger(): Promise<SwaggerApi | null> {
  loading ??= import('@nestjs/swagger').then(
    (swagger) => swagger as SwaggerApi,
    (error: unknown) => {
      if (isNotFound(error, '@nestjs/swagger')) {
        return null;
      }
      throw error;
    },
  );
  return loading;
}

function isNotFound(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(`'${name}'`)
  );
}

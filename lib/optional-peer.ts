import type { Logger } from '@nestjs/common';

/**
 * Whether `error` says that the package `name` is not installed, as opposed to installed but
 * failing to load (which is worth a warning). Both module systems' codes are checked: the build
 * is CommonJS, the tests load the library as ES modules.
 */
export function isModuleNotFound(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    message.includes(`'${name}'`)
  );
}

/**
 * An optional peer, imported by `load` on first use so that an application without it neither
 * needs it nor loads it; null when it is not installed. Any other failure to load it is logged
 * with what the module goes without (`without`), and the application starts all the same.
 */
export function loadOptionalPeer<T>(
  name: string,
  load: () => Promise<unknown>,
  without: string,
  logger: Pick<Logger, 'warn'>,
): Promise<T | null> {
  return load().then(
    (module) => module as T,
    (error: unknown) => {
      if (!isModuleNotFound(error, name)) {
        logger.warn(
          `${name} is installed but could not be loaded, so ${without}: ${String(error)}`,
        );
      }
      return null;
    },
  );
}

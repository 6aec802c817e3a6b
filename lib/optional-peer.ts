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

/**
 * Default for `storeStatus`: successes, redirects and client errors are final answers a retry
 * should see again. 409 and 429 say "try again later", and 5xx may be transient, so those free the
 * key for the retry.
 */
export function isStoredStatusByDefault(status: number): boolean {
  return status < 500 && status !== 409 && status !== 429;
}

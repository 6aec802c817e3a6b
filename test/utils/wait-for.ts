/**
 * Polls `condition` until it holds, or throws after `timeoutMs`. Tests wait for states they can
 * observe (a row, a status) instead of sleeping for a guessed time.
 */
export async function waitFor(
  condition: () => Promise<boolean>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

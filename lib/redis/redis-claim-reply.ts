import type { ExistingKey } from '../protocol/claim-decision';

/**
 * The claim script's answer (see `CLAIM_SCRIPT`), with Buffer replies: `['claimed']`, or what the
 * key holds: state, fingerprint, lease left, status, and headers and body for a completed key.
 */
export type ClaimReply =
  [Buffer] | [Buffer, Buffer | null, number, Buffer | null, Buffer | null, Buffer | null];

/** Whether the script claimed the key (and so wrote it). */
export function claimedKey(reply: unknown): boolean {
  return (reply as ClaimReply).length === 1;
}

/**
 * The key that a claim script found and did not take, as the shared decision reads it. Redis
 * holds the fingerprint as UTF-8 bytes, so it is compared as bytes with the request's: a string
 * that UTF-8 cannot carry (a lone surrogate) still matches itself.
 */
export function existingKey(reply: ClaimReply, requestFingerprint: string | null): ExistingKey {
  const [state, fingerprint, leaseLeftMs, status, headers, body] = reply as Extract<
    ClaimReply,
    { length: 6 }
  >;
  return {
    state: state.toString() as ExistingKey['state'],
    fingerprint:
      fingerprint === null
        ? null
        : requestFingerprint !== null && fingerprint.equals(Buffer.from(requestFingerprint))
          ? requestFingerprint
          : fingerprint.toString(),
    leaseLeftMs,
    status: status === null ? null : Number(status.toString()),
    response:
      headers === null
        ? null
        : {
            status: Number(status?.toString()),
            headers: JSON.parse(headers.toString()) as Record<string, string>,
            // The bytes as Redis sent them: a Buffer of the reply's own, for the caller to keep.
            body,
          },
  };
}

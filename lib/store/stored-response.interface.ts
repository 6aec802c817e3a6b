/** A response as stored for replay: the exact status, headers and body bytes. */
export interface StoredResponse {
  /** HTTP status code. */
  status: number;
  /** Replayable headers, lower-case names. */
  headers: Record<string, string>;
  /** Body bytes exactly as sent, or `null` for an empty body. */
  body: Buffer | null;
}

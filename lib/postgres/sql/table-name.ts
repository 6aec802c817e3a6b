/** Default name of the idempotency table. */
export const IDEMPOTENCY_TABLE = 'idempotency_records';

/**
 * A table name is spliced into SQL, so only plain (optionally schema-qualified) identifiers are
 * accepted: letters, digits and underscores, at most 63 characters a part.
 */
export function assertTableName(name: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/.test(name)) {
    throw new Error(
      `nestjs-idempotency: tableName must be an identifier such as "idempotency_records" or "billing.idempotency_records", got ${JSON.stringify(name)}.`,
    );
  }
}

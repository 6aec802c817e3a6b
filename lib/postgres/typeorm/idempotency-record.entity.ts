import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { IDEMPOTENCY_TABLE } from '../sql/table-name';

/**
 * One idempotency key of one scope: its claim while in flight, then its stored response until it
 * expires. Add it to your DataSource's `entities` to let `synchronize` create the table, or run
 * `CreateIdempotencyRecords` from your migrations.
 *
 * The store reads and writes the table with its own prepared statements, not through this entity.
 */
@Entity({ name: IDEMPOTENCY_TABLE })
@Index('idempotency_records_expires_at_idx', ['expiresAt'])
export class IdempotencyRecord {
  /** Principal the key belongs to; `''` for anonymous clients. */
  @PrimaryColumn({ type: 'varchar', length: 255 })
  scope!: string;

  /** The client's idempotency key (1 to 255 printable ASCII characters). */
  @PrimaryColumn({ type: 'varchar', length: 255 })
  key!: string;

  /** SHA-256 (hex) of the first request; `null` when fingerprinting is off. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  fingerprint!: string | null;

  /** `in_flight`, `completed` or `not_replayable`. */
  @Column({ type: 'varchar', length: 16 })
  state!: 'in_flight' | 'completed' | 'not_replayable';

  /** Token of the current claim; completion and release must present it. */
  @Column({ name: 'lock_token', type: 'uuid' })
  lockToken!: string;

  /** End of the current claim's lease (in flight only). */
  @Column({ name: 'locked_until', type: 'timestamptz', nullable: true })
  lockedUntil!: Date | null;

  /** Status of the stored response. */
  @Column({ name: 'response_status', type: 'smallint', nullable: true })
  responseStatus!: number | null;

  /** Replayable headers of the stored response, as a JSON object (text, kept as written). */
  @Column({ name: 'response_headers', type: 'text', nullable: true })
  responseHeaders!: string | null;

  /** Body bytes of the stored response, exactly as sent. */
  @Column({ name: 'response_body', type: 'bytea', nullable: true })
  responseBody!: Buffer | null;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;

  /** After this instant the key counts as new and the row may be purged. */
  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  /**
   * The steps the claims of a key in flight recorded (recovery points, for `IdempotencySteps`):
   * `list` holds `{ name, result }` in order, `result` being the step's result as JSON text; they
   * count while `claim` is the row's `lockToken`.
   */
  @Column({ type: 'jsonb', nullable: true })
  steps!: { claim: string; list: { name: string; result: string }[] } | null;
}

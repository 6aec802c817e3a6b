import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One row written by every benchmarked request: the side effect that must happen once per key. */
@Entity({ name: 'bench_orders' })
export class BenchOrder {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  /** The request's `Idempotency-Key` (also sent to the plain routes, which ignore it). */
  @Column({ type: 'varchar', length: 255, nullable: true })
  key!: string | null;

  /** The request body as received. */
  @Column({ type: 'text' })
  payload!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}

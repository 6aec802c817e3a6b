import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { IdempotencyTransaction } from '../../lib/postgres';
import { BenchOrder } from './bench-order.entity';

/** What every benchmarked route answers: the row it inserted. */
export interface OrderReceipt {
  id: string;
  key: string | null;
  createdAt: Date | undefined;
}

/** Inserts one order with one `INSERT ... RETURNING` (no ORM-level transaction around it). */
@Injectable()
export class BenchOrdersService {
  constructor(
    @InjectRepository(BenchOrder) private readonly orders: Repository<BenchOrder>,
    private readonly transaction: IdempotencyTransaction,
  ) {}

  /** On a pooled connection of its own: the plain and lease-mode routes. */
  create(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return insertOrder(this.orders, key, input);
  }

  /** Inside the request's idempotency transaction: the transactional route. */
  createInTransaction(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return insertOrder(this.transaction.getRepository(BenchOrder), key, input);
  }
}

/** The one insert of every benchmarked route (also the peer package's app, peer-orders.controller.ts). */
export async function insertOrder(
  orders: Repository<BenchOrder>,
  key: string | undefined,
  input: unknown,
): Promise<OrderReceipt> {
  const result = await orders.insert({ key: key ?? null, payload: JSON.stringify(input ?? null) });
  const generated = result.generatedMaps[0] as Partial<BenchOrder> | undefined;
  return { id: String(generated?.id), key: key ?? null, createdAt: generated?.createdAt };
}

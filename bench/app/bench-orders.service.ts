import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Propagation, TransactionHost } from '@nestjs-cls/transactional';
import type { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import type { EntityManager, Repository } from 'typeorm';
import type { PostgresAppTransactions } from '../../lib/postgres/pool';
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

  /** In a TypeORM transaction of its own, without idempotency. */
  createInOwnTransaction(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return this.orders.manager.transaction((manager) =>
      insertOrder(manager.getRepository(BenchOrder), key, input),
    );
  }
}

/**
 * The same inserts in the app whose transactional route runs in nestjs-cls transactions: there,
 * the route's writes go through the transaction host's EntityManager.
 */
@Injectable()
export class ClsBenchOrdersService {
  constructor(
    @InjectRepository(BenchOrder) private readonly orders: Repository<BenchOrder>,
    private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>,
  ) {}

  create(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return insertOrder(this.orders, key, input);
  }

  createInTransaction(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return insertOrder(this.txHost.tx.getRepository(BenchOrder), key, input);
  }

  /** In a nestjs-cls transaction of its own, as the transactional route's, without idempotency. */
  createInOwnTransaction(key: string | undefined, input: unknown): Promise<OrderReceipt> {
    return this.txHost.withTransaction(Propagation.RequiresNew, () =>
      this.createInTransaction(key, input),
    );
  }
}

/** One statement of the idempotency store on the transaction's EntityManager. */
export const entityManagerQuery: PostgresAppTransactions['query'] = (tx, text, values) =>
  (tx as EntityManager).query(text, [...values]) as Promise<Record<string, unknown>[]>;

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

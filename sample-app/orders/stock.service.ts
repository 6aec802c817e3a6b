import { HttpException, HttpStatus, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { CreateOrderInput } from './create-order.input';

/** Stock set aside for one order; its id is the order's. */
export interface Reservation {
  id: string;
  sku: string;
  quantity: number;
  amount: number;
  currency: string;
}

interface ReservationRow {
  id: string;
  sku: string;
  quantity: number;
  amount: number;
  currency: string;
}

const RESERVATION = 'id, sku, quantity, amount, currency';

/**
 * Reserves and releases stock, each in the transaction of the step that does it (see
 * `IdempotencySteps.runInTransaction`).
 */
@Injectable()
export class StockService {
  /**
   * Takes `input.quantity` items of `input.sku` out of stock and writes the reservation, in the
   * step's transaction: both commit with the step's recovery point, or neither does.
   */
  async reserve(
    manager: EntityManager,
    reserveKey: string,
    input: CreateOrderInput,
  ): Promise<Reservation> {
    // The step's key names one request (its key and body): sent again after its key expired,
    // the same request finds its reservation rather than reserving twice.
    const existing: ReservationRow[] = await manager.query(
      `SELECT ${RESERVATION} FROM stock_reservations WHERE reserve_key = $1`,
      [reserveKey],
    );
    if (existing.length > 0) {
      return toReservation(existing[0]);
    }
    // In a CTE: TypeORM answers an UPDATE with [rows, count], a SELECT with its rows.
    const taken: { unit_price: number; currency: string }[] = await manager.query(
      `WITH taken AS (
         UPDATE stock_items SET available = available - $2
         WHERE sku = $1 AND available >= $2 RETURNING unit_price, currency
       ) SELECT * FROM taken`,
      [input.sku, input.quantity],
    );
    if (taken.length === 0) {
      throw await this.notReservable(manager, input.sku);
    }
    const reserved: ReservationRow[] = await manager.query(
      `INSERT INTO stock_reservations (reserve_key, sku, quantity, amount, currency)
       VALUES ($1, $2, $3, $4, $5) RETURNING ${RESERVATION}`,
      [
        reserveKey,
        input.sku,
        input.quantity,
        taken[0].unit_price * input.quantity,
        taken[0].currency,
      ],
    );
    return toReservation(reserved[0]);
  }

  /** Puts an order's items back in stock (its payment was declined), if they are not back yet. */
  async release(manager: EntityManager, orderId: string): Promise<{ released: true }> {
    const released: { sku: string; quantity: number }[] = await manager.query(
      `WITH released AS (
         UPDATE stock_reservations SET released_at = now()
         WHERE id = $1 AND released_at IS NULL RETURNING sku, quantity
       ) SELECT * FROM released`,
      [orderId],
    );
    if (released.length > 0) {
      await manager.query('UPDATE stock_items SET available = available + $2 WHERE sku = $1', [
        released[0].sku,
        released[0].quantity,
      ]);
    }
    return { released: true };
  }

  private async notReservable(manager: EntityManager, sku: string): Promise<HttpException> {
    const known: unknown[] = await manager.query('SELECT 1 FROM stock_items WHERE sku = $1', [sku]);
    return known.length === 0
      ? new HttpException({ error: 'product_not_found' }, HttpStatus.NOT_FOUND)
      : new HttpException({ error: 'insufficient_stock' }, HttpStatus.BAD_REQUEST);
  }
}

function toReservation(row: ReservationRow): Reservation {
  return {
    id: row.id,
    sku: row.sku,
    quantity: row.quantity,
    amount: row.amount,
    currency: row.currency.trim(),
  };
}

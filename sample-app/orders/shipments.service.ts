import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';

/** A shipment as the order answer shows it. */
export interface Shipment {
  id: string;
}

/** Records shipments: one per order, however often the step runs. */
@Injectable()
export class ShipmentsService {
  async record(manager: EntityManager, orderId: string, chargeId: string): Promise<Shipment> {
    await manager.query(
      `INSERT INTO shipments (order_id, charge_id) VALUES ($1, $2)
       ON CONFLICT (order_id) DO NOTHING`,
      [orderId, chargeId],
    );
    const rows: { id: string }[] = await manager.query(
      'SELECT id FROM shipments WHERE order_id = $1',
      [orderId],
    );
    return { id: rows[0].id };
  }
}

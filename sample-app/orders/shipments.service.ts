import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';

/** A shipment as the order answer shows it. */
export interface Shipment {
  id: string;
}

/** Records shipments, in the transaction of the step that does it. */
@Injectable()
export class ShipmentsService {
  async record(manager: EntityManager, orderId: string, chargeId: string): Promise<Shipment> {
    // One shipment per order: the same request sent again after its key expired finds it.
    const rows: { id: string }[] = await manager.query(
      `WITH inserted AS (
         INSERT INTO shipments (order_id, charge_id) VALUES ($1, $2)
         ON CONFLICT (order_id) DO NOTHING RETURNING id
       )
       SELECT id FROM inserted UNION ALL SELECT id FROM shipments WHERE order_id = $1`,
      [orderId, chargeId],
    );
    return { id: rows[0].id };
  }
}

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
    const rows: { id: string }[] = await manager.query(
      'INSERT INTO shipments (order_id, charge_id) VALUES ($1, $2) RETURNING id',
      [orderId, chargeId],
    );
    return { id: rows[0].id };
  }
}

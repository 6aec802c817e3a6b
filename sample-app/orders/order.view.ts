/** An order as `POST /orders` answers it. */
export interface OrderView {
  id: string;
  sku: string;
  quantity: number;
  amount: number;
  currency: string;
  chargeId: string;
  shipmentId: string;
  status: 'confirmed';
}

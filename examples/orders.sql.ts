/** The examples' business table, as each ORM's migration would create it. */
export const CREATE_ORDERS_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS orders (
  id       serial  PRIMARY KEY,
  customer text    NOT NULL,
  amount   integer NOT NULL CHECK (amount > 0)
)`;

/** What a client posts to `POST /orders` in every example. */
export interface CreateOrder {
  customer: string;
  amount: number;
}

/** The pattern of the messages that ask for a payment (the `pattern` of Nest's envelope). */
export const PAYMENTS_REQUESTED = 'payments.requested';

/**
 * Deliveries taken at once. Each one being handled holds a database connection for its
 * transaction, out of the pool the HTTP routes share (20).
 */
export const PAYMENTS_CONSUMER_PREFETCH = 10;

export {
  IdempotencyHealthIndicator,
  type IdempotencyHealthDetails,
  type IdempotencyStoreHealthReport,
} from './idempotency-health.indicator';
export {
  IDEMPOTENCY_HEALTH_DEFAULTS,
  type IdempotencyHealthOptions,
} from './idempotency-health.options';

import { type ExecutionContext, createParamDecorator } from '@nestjs/common';
import { ACTIVE_TRANSACTION } from '../../idempotency.constants';

/**
 * Injects the EntityManager of the request's idempotency transaction into a handler parameter
 * (routes marked `@Idempotent({ transactional: true })`). Services further down can use the
 * injectable `IdempotencyTransaction` instead.
 *
 * @example
 * ```ts
 * @Post()
 * @Idempotent({ transactional: true })
 * create(@Body() dto: CreateOrderDto, @IdempotentEntityManager() manager: EntityManager) {
 *   return manager.getRepository(Order).save(dto);
 * }
 * ```
 */
export const IdempotentEntityManager = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => {
    // A message handler's transaction is kept on its transport context, an HTTP one's on the request.
    const holder =
      context.getType() === 'rpc'
        ? context.switchToRpc().getContext<Record<PropertyKey, unknown> | undefined>()
        : context.switchToHttp().getRequest<Record<PropertyKey, unknown>>();
    const manager = holder?.[ACTIVE_TRANSACTION];
    if (!manager) {
      throw new Error(
        'nestjs-idempotency: @IdempotentEntityManager() needs a route marked @Idempotent({ transactional: true }) and a request with a key.',
      );
    }
    return manager;
  },
);

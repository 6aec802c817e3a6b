import { Controller, Post } from '@nestjs/common';
import { EventPattern } from '@nestjs/microservices';
import { type RouteStoreCapabilities, configureRoute } from '../../../lib/http/route-plan';
import type { IdempotencyRouteOptions } from '../../../lib/interfaces/idempotency-options.interface';
import { PgPoolIdempotencyStore } from '../../../lib/postgres/store/pg-pool-idempotency.store';
import { RedisIdempotencyStore } from '../../../lib/redis/redis-idempotency.store';
import { commitsClaimsAsynchronously } from '../../../lib/store/asynchronous-claim-commits.interface';
import { InMemoryIdempotencyStore } from '../../../lib/testing/in-memory-idempotency.store';

@Controller('orders')
class OrdersController {
  @Post()
  create(): void {}

  @EventPattern('orders.created')
  created(data: unknown): unknown {
    return data;
  }
}

const postgres: RouteStoreCapabilities = {
  runsTransactions: true,
  commitsClaimsAsynchronously: true,
};
const redis: RouteStoreCapabilities = {
  runsTransactions: false,
  commitsClaimsAsynchronously: false,
};

function configure(
  route: IdempotencyRouteOptions | undefined,
  store: RouteStoreCapabilities,
  module: IdempotencyRouteOptions = {},
  method = 'create',
) {
  return configureRoute(OrdersController, method, route, module, store, method === 'created');
}

describe("configureRoute: claimCommit: 'asynchronous'", () => {
  it('is accepted on a lease-mode route of a store that commits claims asynchronously', () => {
    expect(configure({ claimCommit: 'asynchronous' }, postgres).settings.claimCommit).toBe(
      'asynchronous',
    );
    expect(configure({}, postgres, { claimCommit: 'asynchronous' }).settings.claimCommit).toBe(
      'asynchronous',
    );
    expect(
      configure({ claimCommit: 'asynchronous' }, postgres, {}, 'created').settings.claimCommit,
    ).toBe('asynchronous');
  });

  it('refuses a transactional route, whose claim commits with the handler', () => {
    expect(() => configure({ claimCommit: 'asynchronous', transactional: true }, postgres)).toThrow(
      /OrdersController\.create is transactional, and claimCommit: 'asynchronous' applies to lease mode only/,
    );
    // A module-wide default reaches every route, the transactional ones too.
    expect(() =>
      configure({ transactional: true }, postgres, { claimCommit: 'asynchronous' }),
    ).toThrow(/lease mode only/);
    expect(configure({ transactional: true }, postgres).settings.claimCommit).toBe('synchronous');
  });

  it('refuses a store that cannot commit a claim asynchronously', () => {
    expect(() => configure({ claimCommit: 'asynchronous' }, redis)).toThrow(
      /OrdersController\.create has claimCommit: 'asynchronous', but the store in use cannot commit a claim asynchronously/,
    );
    expect(() => configure(undefined, redis, { claimCommit: 'asynchronous' })).toThrow(
      /cannot commit a claim asynchronously/,
    );
    expect(configure({ claimCommit: 'synchronous' }, redis).settings.claimCommit).toBe(
      'synchronous',
    );
  });
});

describe('commitsClaimsAsynchronously', () => {
  it('holds for the PostgreSQL stores only', () => {
    const pool = () => {
      throw new Error('no pool in unit tests');
    };
    expect(commitsClaimsAsynchronously(new PgPoolIdempotencyStore(pool))).toBe(true);
    expect(commitsClaimsAsynchronously(new InMemoryIdempotencyStore())).toBe(false);
    expect(
      commitsClaimsAsynchronously(
        new RedisIdempotencyStore({} as ConstructorParameters<typeof RedisIdempotencyStore>[0]),
      ),
    ).toBe(false);
  });
});

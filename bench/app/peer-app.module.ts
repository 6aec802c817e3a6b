import { type DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { NodeIdempotencyModule, StorageAdapterEnum } from '@node-idempotency/nestjs';
import { BenchOrder } from './bench-order.entity';
import { PeerOrdersController } from './peer-orders.controller';

/** How the peer package's app is set up. */
export interface PeerAppConfig {
  databaseUrl: string;
  redisUrl: string;
  /** Size of the DataSource's pg pool. */
  poolSize: number;
}

/**
 * The side-by-side app: `@node-idempotency/nestjs` 1.0.4 with its Redis adapter, registered as
 * its README shows (`forRootAsync` with `storage: { adapter: 'redis', options }`, the options
 * being those of the `redis` client), on the bench's Redis server and the main database (whose
 * tables the `main` app's migrations created).
 */
@Module({})
export class PeerAppModule {
  static register(config: PeerAppConfig): DynamicModule {
    return {
      module: PeerAppModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          entities: [BenchOrder],
          logging: false,
          extra: { max: config.poolSize, idleTimeoutMillis: 0 },
        }),
        TypeOrmModule.forFeature([BenchOrder]),
        NodeIdempotencyModule.forRootAsync({
          storage: { adapter: StorageAdapterEnum.redis, options: { url: config.redisUrl } },
        }),
      ],
      controllers: [PeerOrdersController],
    };
  }
}

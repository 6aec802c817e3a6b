import {
  BadRequestException,
  Body,
  Controller,
  type DynamicModule,
  Inject,
  Injectable,
  Module,
  Post,
  Query,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { TransactionHost, Transactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterDrizzleOrm } from '@nestjs-cls/transactional-adapter-drizzle-orm';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import knex, { type Knex } from 'knex';
import { CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { IdempotencyModule, Idempotent } from '../../lib';
import {
  type PostgresAppTransactions,
  drizzleClient,
  drizzleQuery,
  entityManagerClient,
  entityManagerQuery,
  knexQuery,
  knexTransactionalAdapter,
  kyselyQuery,
  kyselyTransactionalAdapter,
  pgPoolStore,
} from '../../lib/postgres/pool';
import { databaseWithCls } from './cls-integrations/database-with-cls';
import { prismaIntegration } from './cls-integrations/prisma';

/*
 * An app whose transactional route runs on pgPoolStore() inside its own @nestjs-cls/transactional
 * transactions, with the adapter CLS_INTEGRATION names (see INTEGRATIONS), on Express or Fastify
 * (HTTP_ADAPTER), for DATABASE_URL, on PORT. A process of its own: @nestjs-cls/transactional is
 * CommonJS that requires Nest 12's ES modules, which Node loads and Jest's module registry
 * cannot. test/e2e/cls-transactional.e2e-spec.ts compiles and starts it.
 */

const PG_POOL = Symbol('PG_POOL');
const DRIZZLE = Symbol('DRIZZLE');
const KYSELY = Symbol('KYSELY');
const KNEX = Symbol('KNEX');

type Query = PostgresAppTransactions['query'];

/** The route's writes, in whatever transaction is active: a @Transactional() service. */
@Injectable()
class LedgerService {
  static query: Query;

  constructor(private readonly txHost: TransactionHost) {}

  /** A statement that fails, leaving the transaction aborted (SQLSTATE 25P02 after it). */
  async fail(): Promise<void> {
    await LedgerService.query(this.txHost.tx, 'SELECT 1 / 0', []);
  }

  @Transactional()
  async record(key: string, amount: number, account: number): Promise<void> {
    await LedgerService.query(
      this.txHost.tx,
      'INSERT INTO transfers (key, amount, account_id) VALUES ($1, $2, $3)',
      [key, amount, account],
    );
  }
}

@Controller('transfers')
class TransfersController {
  constructor(
    private readonly ledger: LedgerService,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
  ) {}

  @Post()
  @Idempotent({ transactional: true })
  async create(
    @Body() body: { key: string; amount: number; account?: number },
    @Query('fail') fail: string | undefined,
    @Query('delayMs') delayMs: string | undefined,
  ) {
    // Outside the transaction: counts executions, whatever becomes of their writes.
    await this.pool.query('INSERT INTO attempts (key) VALUES ($1)', [body.key]);
    await this.ledger.record(body.key, body.amount, body.account ?? 1);
    if (delayMs) {
      await new Promise((resolve) => setTimeout(resolve, Number(delayMs)));
    }
    if (fail === 'after-write') {
      throw new Error('the handler failed after its first write');
    }
    if (body.amount < 0) {
      throw new BadRequestException('amount must not be negative');
    }
    return { key: body.key, amount: body.amount };
  }

  /** Writes through `txHost.tx` alone: nothing to warn about. */
  @Post('quiet')
  @Idempotent({ transactional: true })
  async quiet(@Body() body: { key: string; amount: number }) {
    await this.ledger.record(body.key, body.amount, 1);
    return { key: body.key };
  }

  /**
   * Refused after writing, with `rollbackOnClientError`: the 400 is stored without the writes.
   * With `?poison=1` a failed statement of its own has aborted the transaction first.
   */
  @Post('refused')
  @Idempotent({ transactional: true, rollbackOnClientError: true })
  async refuse(
    @Body() body: { key: string; amount: number },
    @Query('poison') poison: string | undefined,
    @Query('delayMs') delayMs: string | undefined,
  ) {
    await this.pool.query('INSERT INTO attempts (key) VALUES ($1)', [body.key]);
    await this.ledger.record(body.key, body.amount, 1);
    if (poison) {
      await this.ledger.fail().catch(() => undefined);
    }
    if (delayMs) {
      await new Promise((resolve) => setTimeout(resolve, Number(delayMs)));
    }
    throw new BadRequestException(`refused ${body.key}`);
  }
}

interface Integration {
  query: Query;
  /**
   * The pg client under the host's `tx`, where the data layer shows it: the store then pipelines
   * its statements on it (TypeORM and Drizzle here; the others go through `query` alone).
   */
  client?: PostgresAppTransactions['client'];
  /** The application's database module and its ClsModule, given the pool. */
  modules(pool: pg.Pool, url: string): DynamicModule[];
}

const INTEGRATIONS: Record<string, Integration> = {
  typeorm: {
    query: entityManagerQuery,
    client: entityManagerClient,
    modules: (_pool, url) => [
      TypeOrmModule.forRoot({ type: 'postgres', url, extra: { max: 20 } }),
      ...databaseWithCls(
        [
          {
            provide: PG_POOL,
            useFactory: (dataSource: DataSource) =>
              (dataSource.driver as unknown as { master: pg.Pool }).master,
            inject: [getDataSourceToken()],
          },
        ],
        new TransactionalAdapterTypeOrm({ dataSourceToken: getDataSourceToken() }),
      ),
    ],
  },
  drizzle: {
    query: drizzleQuery(sql),
    client: drizzleClient,
    modules: (pool) =>
      databaseWithCls(
        [
          { provide: PG_POOL, useValue: pool },
          { provide: DRIZZLE, useFactory: () => drizzle(pool) },
        ],
        new TransactionalAdapterDrizzleOrm({ drizzleInstanceToken: DRIZZLE }),
      ),
  },
  kysely: {
    query: kyselyQuery(CompiledQuery),
    modules: (pool) =>
      databaseWithCls(
        [
          { provide: PG_POOL, useValue: pool },
          {
            provide: KYSELY,
            useFactory: () => new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) }),
          },
        ],
        kyselyTransactionalAdapter<Kysely<unknown>>({ connectionToken: KYSELY }),
      ),
  },
  knex: {
    query: knexQuery,
    modules: (pool, url) =>
      databaseWithCls(
        [
          { provide: PG_POOL, useValue: pool },
          {
            provide: KNEX,
            useFactory: () => knex({ client: 'pg', connection: url, pool: { min: 0, max: 20 } }),
          },
        ],
        knexTransactionalAdapter<Knex>({ connectionToken: KNEX }),
      ),
  },
  prisma: prismaIntegration(PG_POOL),
};

async function main(): Promise<void> {
  const integration = INTEGRATIONS[process.env.CLS_INTEGRATION ?? ''];
  const url = process.env.DATABASE_URL;
  if (!integration || !url) {
    throw new Error(
      `Set CLS_INTEGRATION (${Object.keys(INTEGRATIONS).join(', ')}) and DATABASE_URL.`,
    );
  }
  LedgerService.query = integration.query;
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  pool.on('error', () => undefined);

  @Module({
    imports: [
      ...integration.modules(pool, url),
      IdempotencyModule.forRootAsync({
        // A hook that queries the pool as the response is recorded: not the handler's query, so
        // never warned about.
        useFactory: (appPool: pg.Pool) => ({
          onOutcome: () => void appPool.query('SELECT 1').catch(() => undefined),
        }),
        inject: [PG_POOL],
        store: pgPoolStore({
          poolToken: PG_POOL,
          transactionHost: {
            token: TransactionHost,
            query: integration.query,
            client: integration.client,
          },
        }),
      }),
    ],
    controllers: [TransfersController],
    providers: [LedgerService],
  })
  class AppModule {}

  const app = await NestFactory.create(
    AppModule,
    process.env.HTTP_ADAPTER === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
    // Warnings too: the store's, about queries outside the transaction, are asserted on.
    { logger: ['error', 'warn'] },
  );
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

import {
  Body,
  Controller,
  type DynamicModule,
  Headers,
  Injectable,
  Module,
  type OnModuleDestroy,
  Post,
} from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { IdempotencyModule, Idempotent } from '../../../lib';
import { type FixtureIdempotencyOptions, onPostgres } from '../../e2e/fixtures/fixture-idempotency';
import {
  CreateIdempotencyRecords1764201600000,
  IdempotencyTransaction,
} from '../../../lib/postgres';
import { CreateExecutions1764201600002 } from '../../e2e/fixtures/executions';

/** Longest a duplicate of a transactional key waits for the first before answering 409. */
export const FAULT_WAIT_TIMEOUT_MS = 1500;

const INSERT_EXECUTION = 'INSERT INTO executions (route, idem_key) VALUES ($1, $2) RETURNING id';

/**
 * Where the lease route records its runs: a database on another server, which no fault touches.
 * It stands for a side effect outside the application's database (a card network), so that the
 * only thing the database faults break on that route is the idempotency store itself.
 */
@Injectable()
export class SideEffectLedger implements OnModuleDestroy {
  private readonly pool: pg.Pool;

  constructor(url: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 10 });
    this.pool.on('error', () => undefined);
  }

  async record(route: string, key: string): Promise<number> {
    const { rows } = await this.pool.query<{ id: number }>(INSERT_EXECUTION, [route, key]);
    return rows[0].id;
  }

  onModuleDestroy(): Promise<void> {
    return this.pool.end();
  }
}

/** Request body of both routes; echoed back so a replay can be compared byte for byte. */
interface FaultBody {
  n?: number;
}

/**
 * `X-Work-Ms` (not fingerprinted) is how long a handler works after its write; `X-Pause-Ms`, how
 * long the transactional one waits before it, holding its claimed transaction.
 */
@Controller('faults')
export class DbFaultController {
  constructor(
    private readonly ledger: SideEffectLedger,
    private readonly transaction: IdempotencyTransaction,
  ) {}

  /** Lease mode; the run is recorded outside the faulty database. */
  @Post('lease')
  @Idempotent()
  async lease(
    @Body() body: FaultBody,
    @Headers('idempotency-key') key: string,
    @Headers('x-work-ms') workMs?: string,
  ) {
    const execution = await this.ledger.record('lease', key);
    await sleep(Number(workMs ?? 0));
    return { route: 'lease', execution, key, n: body.n ?? null };
  }

  /** Transactional mode; the run is recorded in the request's transaction, in the faulty database. */
  @Post('transactional')
  @Idempotent({ transactional: true, waitTimeoutMs: FAULT_WAIT_TIMEOUT_MS })
  async transactional(
    @Body() body: FaultBody,
    @Headers('idempotency-key') key: string,
    @Headers('x-work-ms') workMs?: string,
    @Headers('x-pause-ms') pauseMs?: string,
  ) {
    await sleep(Number(pauseMs ?? 0));
    const rows = (await this.transaction.manager.query(INSERT_EXECUTION, [
      'transactional',
      key,
    ])) as { id: number }[];
    await sleep(Number(workMs ?? 0));
    return { route: 'transactional', execution: rows[0].id, key, n: body.n ?? null };
  }
}

export interface DbFaultAppOptions {
  /** The database under fault: idempotency records and the transactional route's runs. */
  databaseUrl: string;
  /** A database no fault touches: the lease route's runs (needs an `executions` table). */
  sideDatabaseUrl: string;
  idempotency: FixtureIdempotencyOptions;
  poolSize: number;
}

/** The app the database-fault scenarios load: one lease route, one transactional route. */
@Module({})
export class DbFaultAppModule {
  static register(options: DbFaultAppOptions): DynamicModule {
    return {
      module: DbFaultAppModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: options.databaseUrl,
          migrations: [CreateIdempotencyRecords1764201600000, CreateExecutions1764201600002],
          migrationsRun: true,
          extra: { max: options.poolSize },
          entities: [],
        }),
        IdempotencyModule.forRoot(onPostgres({ purgeIntervalMs: 0, ...options.idempotency })),
      ],
      controllers: [DbFaultController],
      providers: [
        {
          provide: SideEffectLedger,
          useFactory: () => new SideEffectLedger(options.sideDatabaseUrl),
        },
      ],
    };
  }
}

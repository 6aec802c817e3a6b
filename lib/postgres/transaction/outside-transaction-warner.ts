import { Inject, Injectable, Logger, type OnModuleInit, Optional } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { ResolvedModuleSettings } from '../../idempotency-options.defaults';
import { IDEMPOTENCY_DATA_SOURCE, IDEMPOTENCY_SETTINGS } from '../../idempotency.module-definition';
import { IdempotencyTransaction } from './idempotency-transaction.service';

/**
 * Development aid: warns (once per route) when a transactional request's handler takes a second
 * connection from the DataSource, which is what a write through an injected repository does. Such
 * writes commit on their own and survive a rollback of the idempotency transaction.
 *
 * It wraps the driver's connection getter, so it costs one AsyncLocalStorage lookup per pooled
 * connection checkout, and nothing per query.
 */
@Injectable()
export class OutsideTransactionWarner implements OnModuleInit {
  private readonly logger = new Logger('IdempotencyTransaction');
  private readonly warned = new Set<string>();

  constructor(
    @Inject(IDEMPOTENCY_SETTINGS) private readonly settings: ResolvedModuleSettings,
    private readonly transaction: IdempotencyTransaction,
    @Optional() @Inject(IDEMPOTENCY_DATA_SOURCE) private readonly dataSource?: DataSource,
  ) {}

  onModuleInit(): void {
    const driver = this.dataSource?.driver as
      { obtainMasterConnection?: (...args: unknown[]) => Promise<unknown> } | undefined;
    if (!this.settings.warnOnQueriesOutsideTransaction || !driver?.obtainMasterConnection) {
      return;
    }
    const obtain = driver.obtainMasterConnection.bind(driver);
    driver.obtainMasterConnection = (...args: unknown[]) => {
      const current = this.transaction.current();
      if (current && !this.warned.has(current.route)) {
        this.warned.add(current.route);
        this.logger.warn(
          `${current.route} queried the database outside its idempotency transaction (an injected repository or DataSource?). Those writes commit on their own. Use IdempotencyTransaction.manager or @IdempotentEntityManager().`,
        );
      }
      return obtain(...args);
    };
  }
}

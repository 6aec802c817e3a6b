import { Injectable, type OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { PROVIDER_DATA_SOURCE } from '../payment-provider.constants';

/** Any fixed number: the session lock that serialises the provider's migrations. */
const MIGRATIONS_LOCK = 7_301_964;

/**
 * Runs the provider's migrations at start, one process at a time. Several sample apps started
 * side by side (each with its provider in-process) share one `payment_provider` database, and
 * TypeORM's `migrationsRun` does not lock: two first starts would both create the same tables.
 */
@Injectable()
export class ProviderMigrations implements OnModuleInit {
  constructor(@InjectDataSource(PROVIDER_DATA_SOURCE) private readonly dataSource: DataSource) {}

  async onModuleInit(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.query('SELECT pg_advisory_lock($1)', [MIGRATIONS_LOCK]);
      await this.dataSource.runMigrations({ transaction: 'each' });
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATIONS_LOCK]).catch(() => undefined);
      await runner.release();
    }
  }
}

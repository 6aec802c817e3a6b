import type { DynamicModule } from '@nestjs/common';
import { TransactionalAdapterPrisma } from '@nestjs-cls/transactional-adapter-prisma';
import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from '../../../examples/prisma/generated/client';
import { prismaQuery } from '../../../lib/postgres/pool';
import { databaseWithCls } from './database-with-cls';

const PRISMA = Symbol('PRISMA');

/**
 * cls-transactional-app.ts on Prisma: a client on the app's pool through @prisma/adapter-pg, in
 * transactions of @nestjs-cls/transactional's Prisma adapter. `poolToken` is the app's token for
 * that pool, provided here.
 */
export function prismaIntegration(poolToken: symbol) {
  return {
    query: prismaQuery,
    modules: (pool: pg.Pool): DynamicModule[] =>
      databaseWithCls(
        [
          { provide: poolToken, useValue: pool },
          { provide: PRISMA, useFactory: () => new PrismaClient({ adapter: new PrismaPg(pool) }) },
        ],
        new TransactionalAdapterPrisma<PrismaClient>({ prismaInjectionToken: PRISMA }),
      ),
  };
}

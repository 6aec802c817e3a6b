import { type DynamicModule, Global, Module } from '@nestjs/common';
import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterPrisma } from '@nestjs-cls/transactional-adapter-prisma';
import { PrismaPg } from '@prisma/adapter-pg';
import { ClsModule } from 'nestjs-cls';
import type pg from 'pg';
import { PrismaClient } from '../../../examples/prisma/generated/client';
import { prismaQuery } from '../../../lib/postgres/pool';

const PRISMA = Symbol('PRISMA');

/**
 * cls-transactional-app.ts on Prisma: a client on the app's pool through @prisma/adapter-pg, in
 * transactions of @nestjs-cls/transactional's Prisma adapter. `poolToken` is the app's token for
 * that pool, provided here.
 */
export function prismaIntegration(poolToken: symbol) {
  return {
    query: prismaQuery,
    modules: (pool: pg.Pool): DynamicModule[] => {
      @Global()
      @Module({
        providers: [
          { provide: poolToken, useValue: pool },
          {
            provide: PRISMA,
            useFactory: (p: pg.Pool) => new PrismaClient({ adapter: new PrismaPg(p) }),
            inject: [poolToken],
          },
        ],
        exports: [poolToken, PRISMA],
      })
      class PrismaModule {}
      return [
        { module: PrismaModule },
        ClsModule.forRoot({
          global: true,
          plugins: [
            new ClsPluginTransactional({
              imports: [PrismaModule],
              adapter: new TransactionalAdapterPrisma<PrismaClient>({
                prismaInjectionToken: PRISMA,
              }),
            }),
          ],
        }),
      ];
    },
  };
}

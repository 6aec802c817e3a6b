import { type DynamicModule, Global, Module, type Provider } from '@nestjs/common';
import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { ClsModule } from 'nestjs-cls';

type Adapter = ConstructorParameters<typeof ClsPluginTransactional>[0]['adapter'];

/** The application's database as a global module. */
@Global()
@Module({})
class DatabaseModule {}

/**
 * The modules of an app on one data layer: a global module with `providers` (its pool and its
 * client, by their tokens), and a ClsModule whose transactional plugin runs `adapter` on them.
 */
export function databaseWithCls(
  providers: (Provider & { provide: symbol })[],
  adapter: Adapter,
): DynamicModule[] {
  const database: DynamicModule = {
    module: DatabaseModule,
    providers,
    exports: providers.map((provider) => provider.provide),
  };
  return [
    database,
    ClsModule.forRoot({
      global: true,
      plugins: [new ClsPluginTransactional({ imports: [database], adapter })],
    }),
  ];
}

/**
 * Name of the provider's TypeORM data source. Named: the provider may run in one process beside
 * the sample app, and `@nestjs/typeorm` warns about two data sources of one name in a process.
 */
export const PROVIDER_DATA_SOURCE = 'payment-provider';

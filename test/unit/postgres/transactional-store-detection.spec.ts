import type { DataSource } from 'typeorm';
import { PgPoolIdempotencyStore, PostgresIdempotencyStore } from '../../../lib/postgres';
import { TransactionalIdempotencyStore } from '../../../lib/store/transactional-idempotency-store';
import { InMemoryIdempotencyStore } from '../../../lib/testing';

/*
 * The TypeORM store extends the pool store, so it cannot also extend TransactionalIdempotencyStore;
 * `instanceof` must still say it runs transactions, as the module and users' code ask it.
 */

/** Neither store reads its DataSource or pool before its first statement. */
const dataSource = { driver: {}, options: {} } as unknown as DataSource;
const noPool = () => {
  throw new Error('no pool in unit tests');
};

const unused = (): never => {
  throw new Error('not called here');
};

class OwnTransactionalStore extends TransactionalIdempotencyStore {
  lookup = unused;
  claimInTransaction = unused;
  claim = unused;
  complete = unused;
  markNotReplayable = unused;
  release = unused;
  purgeExpired = unused;
}

it('counts the TypeORM store as transactional, and the pool and in-memory stores not', () => {
  expect(new PostgresIdempotencyStore(dataSource)).toBeInstanceOf(TransactionalIdempotencyStore);
  expect(new PgPoolIdempotencyStore(noPool)).not.toBeInstanceOf(TransactionalIdempotencyStore);
  expect(new InMemoryIdempotencyStore()).not.toBeInstanceOf(TransactionalIdempotencyStore);
  expect({ lookup() {}, claimInTransaction() {} }).not.toBeInstanceOf(
    TransactionalIdempotencyStore,
  );
});

it('keeps the usual meaning of instanceof for a subclass', () => {
  const own = new OwnTransactionalStore();
  expect(own).toBeInstanceOf(TransactionalIdempotencyStore);
  expect(own).toBeInstanceOf(OwnTransactionalStore);
  expect(new PostgresIdempotencyStore(dataSource)).not.toBeInstanceOf(OwnTransactionalStore);
});

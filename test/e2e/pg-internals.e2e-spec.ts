import pg from 'pg';
import { inPgPipelineMode, wireOf } from '../../lib/postgres/driver/pg-internals';
import { type TestDatabase, createTestDatabase } from '../utils/test-database';

/*
 * What the PostgreSQL store reads and calls in node-postgres beyond its documented API
 * (lib/postgres/driver/pg-internals.ts), checked against the installed pg. A failure here names
 * the internal that a pg upgrade moved; destroySocket is checked, under a stalled network, in
 * transactional-statement-timeout.e2e-spec.ts.
 */
describe('node-postgres internals the store relies on', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
  });

  const withClient = async (
    options: pg.ClientConfig,
    use: (client: pg.PoolClient) => Promise<void>,
  ) => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1, ...options });
    const client = await pool.connect();
    try {
      await use(client);
    } finally {
      client.release();
      await pool.end();
    }
  };

  it('keeps a connection with the protocol writers a pipeline calls', async () => {
    await withClient({}, async (client) => {
      const wire = wireOf((client as unknown as { connection: pg.Connection }).connection);
      for (const method of ['parse', 'bind', 'describe', 'execute', 'sync'] as const) {
        expect(typeof wire[method]).toBe('function');
      }
      expect(typeof wire.stream.cork).toBe('function');
      expect(typeof wire.stream.uncork).toBe('function');
    });
  });

  it('records the statements a connection prepared, by name, with their text', async () => {
    await withClient({}, async (client) => {
      const wire = wireOf((client as unknown as { connection: pg.Connection }).connection);
      expect(wire.parsedStatements.internals_probe).toBeUndefined();
      await client.query({ name: 'internals_probe', text: 'SELECT 1 AS one' });
      expect(wire.parsedStatements.internals_probe).toBe('SELECT 1 AS one');
    });
  });

  it("hands a custom query's submit the client's connection", async () => {
    await withClient({}, async (client) => {
      const own = (client as unknown as { connection: pg.Connection }).connection;
      let handed: pg.Connection | undefined;
      await new Promise<void>((resolve, reject) => {
        void client.query({
          submit(connection: pg.Connection) {
            handed = connection;
            connection.query('SELECT 1');
          },
          handleRowDescription() {},
          handleDataRow() {},
          handleCommandComplete() {},
          handleEmptyQuery() {},
          handleError: reject,
          handleReadyForQuery: () => resolve(),
        } as unknown as pg.Submittable);
      });
      expect(handed).toBe(own);
    });
  });

  it('tells a client in its own pipeline mode from one that is not', async () => {
    await withClient({}, async (client) => expect(inPgPipelineMode(client)).toBe(false));
    await withClient({ pipeline: true } as pg.ClientConfig, async (client) =>
      expect(inPgPipelineMode(client)).toBe(true),
    );
  });
});

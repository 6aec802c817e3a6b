import {
  durableName,
  resolveJetStreamServerOptions,
} from '../../../lib/nats/jetstream-server.options';

describe('JetStreamServer options', () => {
  it('keeps patterns that differ only in wildcards or separators on their own consumers', () => {
    const names = ['orders.*', 'orders.>', 'orders_*', 'a.b', 'a_b'].map((pattern) =>
      durableName('svc', pattern),
    );
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) {
      expect(name).toMatch(/^svc_[^.*>\s]+$/);
    }
  });

  it('defaults to no delivery limit and a doubling nak delay up to 30 s', () => {
    expect(resolveJetStreamServerOptions({ stream: 'S' })).toMatchObject({
      maxDeliver: -1,
      nakDelayMs: 1_000,
      maxNakDelayMs: 30_000,
    });
  });

  it.each([
    [{ stream: '' }, '`stream` must name'],
    [{ stream: 'S', maxMessages: 0 }, '`maxMessages` must be a positive integer'],
    [{ stream: 'S', ackWaitMs: 0.5 }, '`ackWaitMs` must be a positive integer'],
    [{ stream: 'S', nakDelayMs: -1 }, '`nakDelayMs` must be a positive integer'],
    [{ stream: 'S', maxDeliver: 0 }, '`maxDeliver` must be a positive integer or -1'],
  ])('refuses %j', (options, message) => {
    expect(() => resolveJetStreamServerOptions(options)).toThrow(message);
  });
});

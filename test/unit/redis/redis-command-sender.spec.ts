import { jest } from '@jest/globals';
import { Redis } from 'ioredis';
import { sendBufferCommand, sendThroughMethod } from '../../../lib/redis/redis-command-sender';

describe('sendBufferCommand', () => {
  it("sends through the client's own Buffer method when the client is not ready", async () => {
    // Never connected: no server is needed, and the command must not be written directly.
    const client = new Redis({ lazyConnect: true, enableAutoPipelining: true });
    const setBuffer = jest
      .spyOn(client, 'setBuffer')
      .mockImplementation((() => Promise.resolve(null)) as never);
    const callBuffer = jest.spyOn(client, 'callBuffer');
    try {
      const args = ['key', Buffer.from('record'), 'PX', 1000, 'NX', 'GET'];
      await expect(sendBufferCommand(client, 'set', args)).resolves.toBeNull();
      // Not callBuffer: with auto-pipelining, ioredis 5 would send the key as the command's name.
      expect(callBuffer).not.toHaveBeenCalled();
      expect(setBuffer).toHaveBeenCalledWith(...args);
    } finally {
      client.disconnect();
    }
  });

  it('sends through the Buffer method on a client of another ioredis copy', async () => {
    const evalshaBuffer = jest.fn((..._args: unknown[]) => Promise.resolve(Buffer.from('1')));
    const foreign = { status: 'ready', evalshaBuffer } as unknown as Redis;
    await sendBufferCommand(foreign, 'evalsha', ['sha', 1, 'key', 'token']);
    expect(evalshaBuffer).toHaveBeenCalledWith('sha', 1, 'key', 'token');
  });
});

describe('sendThroughMethod', () => {
  it('queues the command by its Buffer method, on a pipeline as on a client', () => {
    const client = new Redis({ lazyConnect: true });
    try {
      const pipeline = client.pipeline();
      sendThroughMethod(pipeline, 'eval', ['return 1', 1, 'key']);
      expect(pipeline.length).toBe(1);
    } finally {
      client.disconnect();
    }
  });
});

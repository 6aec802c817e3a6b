import { jest } from '@jest/globals';
import { deliveryOf } from '../../../lib/messages/message-delivery';

/** An RmqContext as Nest builds it: the raw channel and the raw amqplib message. */
function rmqContext(
  properties: Record<string, unknown>,
  channel: Record<string, jest.Mock<(...args: unknown[]) => void>>,
) {
  const message = { properties, fields: { deliveryTag: 7 } };
  return {
    getChannelRef: () => channel,
    getMessage: () => message,
    getPattern: () => 'p',
    message,
  };
}

describe('deliveryOf', () => {
  it('reads a RabbitMQ message id, and no id from an empty or missing one', () => {
    const channel = {
      ack: jest.fn<(...args: unknown[]) => void>(),
      nack: jest.fn<(...args: unknown[]) => void>(),
    };
    expect(deliveryOf(rmqContext({ messageId: 'm-1' }, channel)).idempotencyKey()).toBe('m-1');
    expect(deliveryOf(rmqContext({ messageId: '' }, channel)).idempotencyKey()).toBeUndefined();
    expect(deliveryOf(rmqContext({}, channel)).idempotencyKey()).toBeUndefined();
  });

  it('acks, requeues and dead-letters on the delivery channel', () => {
    const channel = {
      ack: jest.fn<(...args: unknown[]) => void>(),
      nack: jest.fn<(...args: unknown[]) => void>(),
    };
    const context = rmqContext({ messageId: 'm-1' }, channel);
    deliveryOf(context).ack();
    deliveryOf(context).retry();
    deliveryOf(context).deadLetter();
    expect(channel.ack).toHaveBeenCalledWith(context.message);
    expect(channel.nack.mock.calls).toEqual([
      [context.message, false, true],
      [context.message, false, false],
    ]);
  });

  it('drops the error of a channel that closed since the delivery (the broker redelivers)', () => {
    const closed = () => {
      throw new Error('Channel closed');
    };
    const channel = {
      ack: jest.fn<(...args: unknown[]) => void>(closed),
      nack: jest.fn<(...args: unknown[]) => void>(closed),
    };
    const delivery = deliveryOf(rmqContext({ messageId: 'm-1' }, channel));
    expect(() => delivery.ack()).not.toThrow();
    expect(() => delivery.deadLetter()).not.toThrow();
  });

  it('uses a context that settles itself (a custom transport) as it is', () => {
    const own = {
      idempotencyKey: () => 'k',
      ack: jest.fn(),
      retry: jest.fn(),
      deadLetter: jest.fn(),
    };
    expect(deliveryOf(own)).toBe(own);
  });

  it('settles nothing on a transport without acknowledgements', () => {
    const delivery = deliveryOf({ getSubject: () => 'orders' });
    expect(delivery.idempotencyKey()).toBeUndefined();
    expect(() => {
      delivery.ack();
      delivery.retry();
      delivery.deadLetter();
    }).not.toThrow();
  });
});

import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import { IdempotencyModule, Idempotent } from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { freePort } from '../../sample-app/database/free-port';
import { type TcpMicroservice, startTcpMicroservice } from '../utils/tcp-microservice';
import { waitFor } from '../utils/wait-for';

/*
 * Message handlers on a transport without acknowledgements (Nest's TCP transport, no broker): the
 * key comes from the payload (`messageKey`), the handler runs once per key, refusals reach a
 * request-reply caller as problem details, and the start-up checks cover message handlers.
 */

interface Quote {
  requestId?: string;
  amount: number;
}

const runs = new Map<string, number>();
const count = (name: string) => runs.set(name, (runs.get(name) ?? 0) + 1);

@Controller()
class QuotesController {
  @MessagePattern('quote')
  @Idempotent({ messageKey: (data) => (data as Quote).requestId })
  quote(@Payload() quote: Quote) {
    count(`quote:${quote.requestId}`);
    return { quoteId: randomUUID(), amount: quote.amount };
  }

  @EventPattern('noted')
  @Idempotent({ required: false, messageKey: (data) => (data as Quote).requestId })
  noted(@Payload() quote: Quote) {
    count(`noted:${quote.amount}`);
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [QuotesController],
})
class QuotesModule {}

@Controller()
class TransactionalConsumer {
  @EventPattern('transfer')
  @Idempotent({ transactional: true })
  transfer(@Payload() _transfer: unknown) {
    return undefined;
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [TransactionalConsumer],
})
class TransactionalConsumerModule {}

@Controller()
class FirstHandler {
  @EventPattern('paid')
  @Idempotent()
  record(@Payload() _payment: unknown) {
    return undefined;
  }
}

@Controller()
class SecondHandler {
  @EventPattern('paid')
  @Idempotent()
  notify(@Payload() _payment: unknown) {
    return undefined;
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [FirstHandler, SecondHandler],
})
class TwoHandlersModule {}

/** A module scope written for HTTP: it reads the request's user, which a message has not. */
const httpScope = (info: { raw: unknown }) =>
  String((info.raw as { user: { id: string } }).user.id);

@Controller()
class ScopedQuotes {
  @MessagePattern('scoped-quote')
  @Idempotent({ messageKey: (data) => (data as Quote).requestId })
  quote(@Payload() quote: Quote) {
    count(`scoped:${quote.requestId}`);
    return { amount: quote.amount };
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore(), scope: httpScope })],
  controllers: [ScopedQuotes],
})
class HttpScopedModule {}

describe('@Idempotent() on message handlers of a transport without acknowledgements', () => {
  let quotes: TcpMicroservice;

  beforeAll(async () => {
    quotes = await startTcpMicroservice(QuotesModule);
  });

  afterAll(async () => {
    await quotes?.close();
  });

  const send = (quote: Quote) => firstValueFrom(quotes.client.send('quote', quote));

  it('answers a repeated request with the first reply, running the handler once', async () => {
    const requestId = randomUUID();
    const first = await send({ requestId, amount: 5 });
    const again = await Promise.all([1, 2, 3].map(() => send({ requestId, amount: 5 })));
    expect(again).toEqual([first, first, first]);
    expect(runs.get(`quote:${requestId}`)).toBe(1);
  });

  it('refuses the key with another payload as problem details (422), without running', async () => {
    const requestId = randomUUID();
    await send({ requestId, amount: 5 });
    await expect(send({ requestId, amount: 6 })).rejects.toMatchObject({
      type: 'urn:nestjs-idempotency:problem:key-mismatch',
      status: 422,
    });
    expect(runs.get(`quote:${requestId}`)).toBe(1);
  });

  it('refuses a message without a key as problem details (400)', async () => {
    await expect(send({ amount: 5 })).rejects.toMatchObject({
      type: 'urn:nestjs-idempotency:problem:key-missing',
      status: 400,
    });
  });

  it('runs an event without a key every time when the key is not required', async () => {
    const amount = Math.random();
    quotes.client.emit('noted', { amount });
    quotes.client.emit('noted', { amount });
    await waitFor(async () => runs.get(`noted:${amount}`) === 2, 5_000);
  });

  it('stops the start when a transactional message handler has no store that runs transactions', async () => {
    const app = await NestFactory.createMicroservice(TransactionalConsumerModule, {
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port: await freePort() },
      logger: false,
      abortOnError: false,
    });
    await expect(app.init()).rejects.toThrow(
      'TransactionalConsumer.transfer is transactional, but the store in use cannot run transactions',
    );
    await app.close();
  });

  it("does not apply the module's HTTP scope to message handlers", async () => {
    const scoped = await startTcpMicroservice(HttpScopedModule);
    try {
      const requestId = randomUUID();
      const ask = () =>
        firstValueFrom(scoped.client.send('scoped-quote', { requestId, amount: 3 }));
      expect(await ask()).toEqual({ amount: 3 });
      expect(await ask()).toEqual({ amount: 3 });
      expect(runs.get(`scoped:${requestId}`)).toBe(1);
    } finally {
      await scoped.close();
    }
  });

  it('stops the start when two idempotent handlers share a pattern (a delivery is settled once)', async () => {
    const app = await NestFactory.createMicroservice(TwoHandlersModule, {
      transport: Transport.TCP,
      options: { host: '127.0.0.1', port: await freePort() },
      logger: false,
      abortOnError: false,
    });
    await expect(app.init()).rejects.toThrow(
      'FirstHandler.record and SecondHandler.notify both handle "paid" with @Idempotent()',
    );
    await app.close();
  });
});

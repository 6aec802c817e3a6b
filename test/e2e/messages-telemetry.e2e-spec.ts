import { Controller, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import { IdempotencyModule, Idempotent } from '../../lib';
import { InMemoryIdempotencyStore } from '../../lib/testing';
import { type TcpMicroservice, startTcpMicroservice } from '../utils/tcp-microservice';
import { TestTelemetry, uninstallTelemetry } from '../utils/telemetry';

/*
 * Message handlers' outcomes reach the module's metrics as HTTP ones do: one count per delivery,
 * labelled with its outcome.
 */

interface Quote {
  requestId: string;
  amount: number;
}

@Controller()
class QuotesController {
  @MessagePattern('quote')
  @Idempotent({ messageKey: (data) => (data as Quote).requestId })
  quote(@Payload() quote: Quote) {
    return { quoteId: randomUUID(), amount: quote.amount };
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ store: new InMemoryIdempotencyStore() })],
  controllers: [QuotesController],
})
class QuotesModule {}

describe('message handlers in the metrics', () => {
  let telemetry: TestTelemetry;
  let quotes: TcpMicroservice;

  beforeAll(async () => {
    // Registered before the application is created, as an instrumentation file does.
    telemetry = TestTelemetry.install();
    quotes = await startTcpMicroservice(QuotesModule);
  });

  afterAll(async () => {
    await quotes?.close();
    uninstallTelemetry();
  });

  it('counts a run, a replay and a mismatch of one key', async () => {
    const requestId = randomUUID();
    const send = (amount: number) =>
      firstValueFrom(quotes.client.send('quote', { requestId, amount } satisfies Quote));
    const first = await send(5);
    expect(await send(5)).toEqual(first);
    await expect(send(6)).rejects.toMatchObject({ status: 422 });
    const counted = (await telemetry.points('idempotency.requests')).map(
      (point) =>
        `${String(point.attributes['http.request.method'])} ${String(point.attributes['idempotency.outcome'])} ${point.value}`,
    );
    // OpenTelemetry's HTTP conventions name any method outside HTTP's `_OTHER`.
    expect(counted.sort()).toEqual([
      '_OTHER completed 1',
      '_OTHER mismatch 1',
      '_OTHER replayed 1',
    ]);
  });
});

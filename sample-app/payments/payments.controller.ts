import { Body, Controller, Get, Headers, Post, Query, Req, Res } from '@nestjs/common';
import { Idempotent } from '../../lib';
import { type CreatePaymentInput, ParseCreatePaymentPipe } from './create-payment.input';
import { type PaymentView, PaymentsService } from './payments.service';

interface DemoRequest {
  user?: { id: string };
}

/** Both Express's `Response` and Fastify's `FastifyReply` have `header(name, value)`. */
interface HeaderSetter {
  header(name: string, value: string): unknown;
}

@Controller('payments')
export class PaymentsController {
  constructor(private readonly payments: PaymentsService) {}

  @Post()
  @Idempotent()
  async create(
    @Body(ParseCreatePaymentPipe) input: CreatePaymentInput,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() request: DemoRequest,
    @Res({ passthrough: true }) response: HeaderSetter,
  ): Promise<PaymentView> {
    const payment = await this.payments.charge(request.user?.id ?? '', idempotencyKey, input);
    response.header('Location', `/payments/${payment.id}`);
    return payment;
  }

  @Get()
  list(@Query('reference') reference: string, @Req() request: DemoRequest): Promise<PaymentView[]> {
    return this.payments.findByReference(request.user?.id ?? '', reference ?? '');
  }
}

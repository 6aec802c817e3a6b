import { Module } from '@nestjs/common';
import { OrdersController } from './orders.controller';
import { OrdersCrashHook } from './orders-crash-hook';
import { PaymentProviderClient } from './payment-provider.client';
import { ShipmentsService } from './shipments.service';
import { StockService } from './stock.service';

/** `POST /orders`: a flow across this app's database and the payment provider. */
@Module({
  controllers: [OrdersController],
  providers: [StockService, ShipmentsService, PaymentProviderClient, OrdersCrashHook],
})
export class OrdersModule {}

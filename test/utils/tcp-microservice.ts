import type { INestMicroservice, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type ClientProxy, ClientProxyFactory, Transport } from '@nestjs/microservices';
import { freePort } from '../../sample-app/database/free-port';

/** A microservice on Nest's TCP transport (no broker), listening, and a client connected to it. */
export interface TcpMicroservice {
  server: INestMicroservice;
  client: ClientProxy;
  close(): Promise<void>;
}

export async function startTcpMicroservice(module: Type): Promise<TcpMicroservice> {
  const port = await freePort();
  const server = await NestFactory.createMicroservice(module, {
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port },
    logger: false,
  });
  await server.listen();
  const client = ClientProxyFactory.create({
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port },
  });
  await client.connect();
  return {
    server,
    client,
    close: async () => {
      client.close();
      await server.close();
    },
  };
}

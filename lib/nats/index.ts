export { JetStreamServer, JETSTREAM_TRANSPORT } from './jetstream.server';
export { JetStreamContext, type JetStreamSettlement } from './jetstream.context';
export { JETSTREAM_SERVER_DEFAULTS, type JetStreamServerOptions } from './jetstream-server.options';
export type { IdempotentMessageContext } from '../messages/message-delivery';

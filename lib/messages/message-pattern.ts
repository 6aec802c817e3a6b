/*
 * Nest's metadata of message handlers, read by its keys (the values of @nestjs/microservices'
 * PATTERN_METADATA and PATTERN_HANDLER_METADATA), so that the core never loads that package.
 */
const PATTERN_METADATA = 'microservices:pattern';
const PATTERN_HANDLER_METADATA = 'microservices:handler_type';
/** PatternHandler.EVENT of @nestjs/microservices. */
const EVENT_HANDLER = 2;

/** `EVENT` for `@EventPattern()` handlers, `MESSAGE` for `@MessagePattern()` (request-reply) ones. */
export type MessageHandlerKind = 'EVENT' | 'MESSAGE';

/** Whether `handler` is a message handler of Nest's microservices. */
export function isMessageHandler(handler: object): boolean {
  return Reflect.hasMetadata(PATTERN_METADATA, handler);
}

export function messageHandlerKind(handler: object): MessageHandlerKind {
  return Reflect.getMetadata(PATTERN_HANDLER_METADATA, handler) === EVENT_HANDLER
    ? 'EVENT'
    : 'MESSAGE';
}

/** The handler's pattern as text (the first, when it has several); objects as JSON. */
export function messagePatternText(handler: object): string {
  const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown;
  const pattern = Array.isArray(patterns) ? (patterns[0] as unknown) : patterns;
  return typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
}

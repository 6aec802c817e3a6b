import type { Type } from '@nestjs/common';
import type { SwaggerApi } from './load-swagger';

const models = new WeakMap<SwaggerApi, Type>();

/**
 * The `IdempotencyProblemDetails` schema (RFC 9457) of the module's error responses, as a model class for
 * `@nestjs/swagger`: one per copy of swagger, so that every route refers to the same schema.
 */
export function problemDetailsModel(swagger: SwaggerApi): Type {
  let model = models.get(swagger);
  if (model) {
    return model;
  }
  // The class name is the schema's name in the document: one that a user's own ProblemDetails
  // DTO does not take over.
  model = class IdempotencyProblemDetails {};
  const property = (name: string, options: Parameters<SwaggerApi['ApiProperty']>[0]) =>
    swagger.ApiProperty(options)((model as Type).prototype as object, name);
  property('type', {
    type: String,
    description: 'URI naming the kind of problem: urn:nestjs-idempotency:problem:<name>.',
    example: 'urn:nestjs-idempotency:problem:key-in-flight',
  });
  property('title', {
    type: String,
    description: 'Short summary of the kind of problem.',
    example: 'Request with this idempotency key in progress',
  });
  property('status', { type: Number, description: 'The HTTP status code.', example: 409 });
  property('detail', { type: String, description: 'What went wrong this time.' });
  property('originalStatus', {
    type: Number,
    required: false,
    description:
      'response-not-replayable only: the status of the response that ran and was not stored.',
    example: 201,
  });
  models.set(swagger, model);
  return model;
}

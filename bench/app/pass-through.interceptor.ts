import { type CallHandler, Injectable, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';

/**
 * A global interceptor that does nothing: what Nest itself costs a route once any interceptor is
 * registered globally (its interceptor chain, the Observable around the handler). Scenario (g0)
 * measures it, so that (g) shows what the idempotency interceptor adds beyond it.
 */
@Injectable()
export class PassThroughInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';

/**
 * Demo authentication: `Authorization: Bearer <clientId>` makes the request act as that client
 * (`request.user = { id: clientId }`); no header is the anonymous client. Real apps put their
 * auth guard here; the idempotency module scopes keys by `request.user.id` either way.
 */
@Injectable()
export class DemoAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context
      .switchToHttp()
      .getRequest<{ headers: Record<string, unknown>; user?: { id: string } }>();
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (match) {
      request.user = { id: match[1] };
    }
    return true;
  }
}

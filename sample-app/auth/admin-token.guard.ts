import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Inject,
  Injectable,
} from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SampleAppConfig } from '../config';
import { SAMPLE_APP_CONFIG } from '../sample-app.constants';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Lets a request through when its `X-Admin-Token` header is the `ADMIN_TOKEN` the app was started
 * with; without one set, nobody. Demo clients (`Authorization: Bearer <clientId>`) are no
 * administrators: operating keys crosses every client's scope.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly token: Buffer | undefined;

  constructor(@Inject(SAMPLE_APP_CONFIG) config: SampleAppConfig) {
    this.token = config.adminToken === undefined ? undefined : digest(config.adminToken);
  }

  canActivate(context: ExecutionContext): boolean {
    const header = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>()
      .headers['x-admin-token'];
    if (this.token === undefined) {
      throw new ForbiddenException({ error: 'admin_disabled' });
    }
    // Digests of equal length, compared in constant time: the token's length does not leak either.
    if (typeof header !== 'string' || !timingSafeEqual(digest(header), this.token)) {
      throw new ForbiddenException({ error: 'not_admin' });
    }
    return true;
  }
}

import {
  BadRequestException,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  NotImplementedException,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import { IdempotencyAdmin, type IdempotencyKeyInfo } from '../../lib';
import { AdminTokenGuard } from '../auth/admin-token.guard';

/** A key as the admin endpoints show it: dates as ISO strings, a stored body as base64. */
type KeyView = Omit<IdempotencyKeyInfo, 'response'> & {
  response?: { status: number; headers: Record<string, string>; bodyBase64: string | null };
};

/**
 * Operating idempotency keys, for administrators only (`X-Admin-Token`). `scope` is the scope as
 * the module stores it: a demo client's id (the default scope is `request.user.id`), `''` or
 * absent for the anonymous client.
 */
@Controller('admin/idempotency-keys')
@UseGuards(AdminTokenGuard)
export class IdempotencyKeysController {
  constructor(private readonly admin: IdempotencyAdmin) {}

  @Get()
  async find(
    @Query('scope') scope: string | undefined,
    @Query('key') key: string | undefined,
    @Query('response') response: string | undefined,
  ): Promise<KeyView> {
    const found = await run(() =>
      this.admin.find(scope ?? '', key ?? '', { withResponse: response === 'true' }),
    );
    if (!found) {
      throw new NotFoundException({ error: 'key_not_found' });
    }
    return view(found);
  }

  @Get('in-flight')
  async inFlight(
    @Query('scope') scope: string | undefined,
    @Query('olderThanMs') olderThanMs: string | undefined,
    @Query('limit') limit: string | undefined,
  ): Promise<{ keys: KeyView[] }> {
    const keys = await run(() =>
      this.admin.listInFlight(scope ?? '', {
        olderThanMs: olderThanMs === undefined ? undefined : Number(olderThanMs),
        limit: limit === undefined ? undefined : Number(limit),
      }),
    );
    return { keys: keys.map(view) };
  }

  @Post('release')
  @HttpCode(200)
  async release(
    @Query('scope') scope: string | undefined,
    @Query('key') key: string | undefined,
  ): Promise<{ released: boolean }> {
    return { released: await run(() => this.admin.release(scope ?? '', key ?? '')) };
  }

  @Delete()
  async delete(
    @Query('scope') scope: string | undefined,
    @Query('key') key: string | undefined,
  ): Promise<{ deleted: boolean }> {
    return { deleted: await run(() => this.admin.delete(scope ?? '', key ?? '')) };
  }
}

/** The admin service's refusals as this app's errors: a bad argument, a store that cannot list. */
async function run<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof RangeError) {
      throw new BadRequestException({ error: 'invalid_argument', message: error.message });
    }
    if (error instanceof Error && /cannot list keys/.test(error.message)) {
      throw new NotImplementedException({ error: 'listing_not_supported', message: error.message });
    }
    throw error;
  }
}

function view({ response, ...info }: IdempotencyKeyInfo): KeyView {
  return response
    ? {
        ...info,
        response: {
          status: response.status,
          headers: response.headers,
          bodyBase64: response.body?.toString('base64') ?? null,
        },
      }
    : info;
}

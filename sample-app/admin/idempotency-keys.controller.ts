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
import { IdempotencyAdmin, type IdempotencyKeyInfo, KeyListingUnsupportedError } from '../../lib';
import { AdminTokenGuard } from '../auth/admin-token.guard';

/** A key as the admin endpoints show it: dates as ISO strings, a stored body as base64. */
type KeyView = Omit<IdempotencyKeyInfo, 'response'> & {
  response?: { status: number; headers: Record<string, string>; bodyBase64: string | null };
};

/**
 * Operating idempotency keys, for administrators only (`X-Admin-Token`). `scope` is the scope as
 * the module stores it: a demo client's id (the default scope is `request.user.id`), `''` or
 * absent for the anonymous client. `release` takes the `claimId` that `find` showed, to free
 * that claim and not a retry that took the key over since.
 */
@Controller('admin/idempotency-keys')
@UseGuards(AdminTokenGuard)
export class IdempotencyKeysController {
  constructor(private readonly admin: IdempotencyAdmin) {}

  @Get()
  async find(
    @Query('scope') scope: unknown,
    @Query('key') key: unknown,
    @Query('response') response: string | undefined,
  ): Promise<KeyView> {
    const found = await run(() =>
      this.admin.find(text(scope), text(key), { withResponse: response === 'true' }),
    );
    if (!found) {
      throw new NotFoundException({ error: 'key_not_found' });
    }
    return view(found);
  }

  @Get('in-flight')
  async inFlight(
    @Query('scope') scope: unknown,
    @Query('olderThanMs') olderThanMs: unknown,
    @Query('limit') limit: unknown,
  ): Promise<{ keys: KeyView[] }> {
    const keys = await run(() =>
      this.admin.listInFlight(text(scope), {
        olderThanMs: olderThanMs === undefined ? undefined : Number(olderThanMs),
        limit: limit === undefined ? undefined : Number(limit),
      }),
    );
    return { keys: keys.map(view) };
  }

  @Post('release')
  @HttpCode(200)
  async release(
    @Query('scope') scope: unknown,
    @Query('key') key: unknown,
    @Query('claimId') claimId: unknown,
  ): Promise<{ released: boolean }> {
    const claim = claimId === undefined ? {} : { claimId: text(claimId) };
    return { released: await run(() => this.admin.release(text(scope), text(key), claim)) };
  }

  @Delete()
  async delete(
    @Query('scope') scope: unknown,
    @Query('key') key: unknown,
  ): Promise<{ deleted: boolean }> {
    return { deleted: await run(() => this.admin.delete(text(scope), text(key))) };
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
    if (error instanceof KeyListingUnsupportedError) {
      throw new NotImplementedException({ error: 'listing_not_supported', message: error.message });
    }
    throw error;
  }
}

/** A query parameter given once; absent is the empty string (the anonymous scope). */
function text(value: unknown): string {
  if (value === undefined) {
    return '';
  }
  if (typeof value !== 'string') {
    throw new BadRequestException({
      error: 'invalid_argument',
      message: 'Give each query parameter once, as plain text.',
    });
  }
  return value;
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

import { isStoredStatusByDefault } from '../../../lib/protocol/response-policy';

describe('isStoredStatusByDefault', () => {
  // Final answers: a retry must see them again.
  it.each([200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 410, 422, 499])(
    'stores %p',
    (status) => {
      expect(isStoredStatusByDefault(status)).toBe(true);
    },
  );

  // "Try again later" answers and possibly transient failures free the key for the retry.
  it.each([409, 429, 500, 502, 503, 504, 599])('does not store %p', (status) => {
    expect(isStoredStatusByDefault(status)).toBe(false);
  });
});

/** Environment variable through which global setup hands the server URL to the test files. */
export const TEST_SERVER_URL_ENV = 'IDEMPOTENCY_TEST_SERVER_URL';

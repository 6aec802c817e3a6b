import { sharedServer } from './shared-server';

export default async function globalTeardown(): Promise<void> {
  const shared = sharedServer();
  shared.users--;
  if (shared.users <= 0) {
    await shared.database?.stop();
    shared.database = undefined;
  }
}

/**
 * A store that can commit a lease-mode claim asynchronously when its `ClaimRequest` asks for it
 * (`claimCommit: 'asynchronous'`): the claim is answered before it is durable, and becomes durable
 * with the next durable write on the same storage. Routes with that option are refused at
 * start-up on any other store, so a store declares it only when that holds for it.
 */
export interface AsynchronousClaimCommits {
  /** Always `true`; its presence is the declaration. */
  readonly commitsClaimsAsynchronously: true;
}

/** Whether `store` can commit claims asynchronously. */
export function commitsClaimsAsynchronously(store: object): store is AsynchronousClaimCommits {
  return (store as Partial<AsynchronousClaimCommits>).commitsClaimsAsynchronously === true;
}

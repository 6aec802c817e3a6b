type RpcExceptionClass = new (error: object) => Error;

let rpcException: Promise<RpcExceptionClass | null> | undefined;

/**
 * An `RpcException` carrying `body`, so that Nest's RPC exception filter sends `body` to a
 * request-reply caller instead of "Internal server error". Its class is loaded on the first
 * refusal: only an application with message handlers has @nestjs/microservices, and only one of
 * those gets here. Without it, a plain Error carrying the body.
 */
export async function rpcError(body: object): Promise<Error> {
  rpcException ??= import('@nestjs/microservices').then(
    (microservices) => microservices.RpcException as RpcExceptionClass,
    () => null,
  );
  const RpcException = await rpcException;
  return RpcException
    ? new RpcException(body)
    : Object.assign(new Error(JSON.stringify(body)), { error: body });
}

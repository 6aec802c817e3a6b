type RpcExceptionClass = new (error: object) => Error;

let rpcException: Promise<RpcExceptionClass | null> | undefined;

/**
 * An `RpcException` carrying `body`, so that Nest's RPC exception filter sends `body` to a
 * request-reply caller instead of "Internal server error". Its class is loaded when a message
 * first fails: only an application with message handlers has @nestjs/microservices, and only one
 * of those gets here. Without it, a plain Error carrying the body.
 */
export async function rpcError(body: object): Promise<Error> {
  const RpcException = await loadRpcException();
  return RpcException
    ? new RpcException(body)
    : Object.assign(new Error(JSON.stringify(body)), { error: body });
}

/** Whether `error` is an `RpcException`, or of a class that extends it. */
export async function isRpcException(error: unknown): Promise<boolean> {
  if (!(error instanceof Error)) {
    return false;
  }
  const RpcException = await loadRpcException();
  return RpcException !== null && error instanceof RpcException;
}

function loadRpcException(): Promise<RpcExceptionClass | null> {
  rpcException ??= import('@nestjs/microservices').then(
    (microservices) => microservices.RpcException as RpcExceptionClass,
    () => null,
  );
  return rpcException;
}

import { connect } from 'node:net';

/** One header line as bytes: any value, including bytes an HTTP client library would refuse. */
export type RawHeader = [name: string, value: Buffer | string];

export interface RawRequest {
  method?: string;
  path: string;
  headers: RawHeader[];
  body?: Buffer | string;
}

/** A response read off the socket, as the client received it. */
export interface RawResponse {
  /** 0 when the server closed or reset the connection without a status line. */
  status: number;
  /** Header names in lower case; repeated headers keep every value. */
  headers: Record<string, string[]>;
  body: Buffer;
  latencyMs: number;
  /** A socket error seen while sending or receiving (a server may answer and close early). */
  socketError?: string;
}

/** The request's bytes, with `Host`, `Content-Length` and `Connection: close` added. */
export function encodeRequest(request: RawRequest): Buffer {
  const body =
    typeof request.body === 'string' ? Buffer.from(request.body, 'utf8') : (request.body ?? null);
  const head: Buffer[] = [
    Buffer.from(`${request.method ?? 'POST'} ${request.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`),
  ];
  for (const [name, value] of request.headers) {
    head.push(Buffer.from(`${name}: `, 'latin1'), Buffer.from(value), Buffer.from('\r\n'));
  }
  head.push(Buffer.from(`Content-Length: ${body?.length ?? 0}\r\nConnection: close\r\n\r\n`));
  return Buffer.concat(body ? [...head, body] : head);
}

/**
 * Sends raw bytes on a fresh TCP connection and reads until the server closes it. A server that
 * answers before reading the whole body (413) may reset the connection: what arrived is kept.
 */
export function rawExchange(
  baseUrl: string,
  bytes: Buffer,
  timeoutMs: number,
): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const started = Date.now();
  return new Promise((settle) => {
    const chunks: Buffer[] = [];
    let socketError: string | undefined;
    let done = false;
    const finish = () => {
      if (done) {
        return;
      }
      done = true;
      clearTimeout(timer);
      socket.destroy();
      settle({
        ...parseResponse(Buffer.concat(chunks)),
        latencyMs: Date.now() - started,
        socketError,
      });
    };
    // No half-close after the request: Node's server aborts a request whose client sent FIN
    // before the answer. `Connection: close` makes the server close once it has answered.
    const socket = connect(Number(url.port), url.hostname, () => socket.write(bytes));
    const timer = setTimeout(() => {
      socketError = `no end of response within ${timeoutMs} ms`;
      finish();
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      socketError = error.code ?? String(error);
    });
    socket.on('close', finish);
  });
}

function parseResponse(raw: Buffer): Omit<RawResponse, 'latencyMs' | 'socketError'> {
  const end = raw.indexOf('\r\n\r\n');
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(raw.subarray(0, 20).toString('latin1'));
  if (end === -1 || !statusMatch) {
    return { status: 0, headers: {}, body: raw };
  }
  const headers: Record<string, string[]> = {};
  for (const line of raw.subarray(0, end).toString('latin1').split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    (headers[name] ??= []).push(line.slice(colon + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding']?.some((value) => /chunked/i.test(value))) {
    body = dechunk(body);
  } else if (headers['content-length']) {
    body = body.subarray(0, Number(headers['content-length'][0]));
  }
  return { status: Number(statusMatch[1]), headers, body };
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < data.length) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) {
      break;
    }
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) {
      break;
    }
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** The first value of a response header, or `''`. */
export function headerOf(response: RawResponse, name: string): string {
  return response.headers[name.toLowerCase()]?.[0] ?? '';
}

/**
 * Names a refusal made by the HTTP platform itself before any Nest code saw the request (Node's
 * parser, Express's body parser, Fastify's content parsers), recognised by status and message;
 * `null` for anything else.
 */
export function platformRejection(response: RawResponse): string | null {
  const type = headerOf(response, 'content-type');
  const text = response.body.toString('utf8');
  if (type === '' && text === '' && (response.status === 400 || response.status === 431)) {
    return `${response.status} from Node's HTTP parser (no body)`;
  }
  if (!type.startsWith('application/json')) {
    return null;
  }
  let message = '';
  try {
    message = String((JSON.parse(text) as { message?: unknown }).message ?? '');
  } catch {
    return null;
  }
  const families: [number, RegExp, string][] = [
    [400, /^Client Error$/, "malformed request (Fastify's clientError)"],
    [431, /header size/i, 'headers too large'],
    [413, /too large/i, 'body over the size limit'],
    [415, /^Unsupported Media Type$|^unsupported charset/i, 'unsupported media type or charset'],
    [400, /JSON|Unexpected|Expected|Body cannot be empty/, 'body not parseable as JSON'],
  ];
  const family = families.find(
    ([status, pattern]) => status === response.status && pattern.test(message),
  );
  return family ? `${response.status} ${family[2]}: ${type}` : null;
}

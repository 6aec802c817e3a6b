import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

type Mode = 'pass' | 'stalled' | 'cut';

/** One client connection and its connection to the target. */
interface Link {
  client: Socket;
  upstream: Socket;
}

/**
 * A TCP proxy on 127.0.0.1 that puts faults between an app and its database:
 * - `stall()`: forwards nothing either way but keeps every socket open, like a frozen server;
 * - `cut()`: resets every connection and drops new ones as soon as they arrive;
 * - `restore()`: passes traffic again (stalled connections resume where they stopped).
 */
export class TcpProxy {
  private mode: Mode = 'pass';
  private readonly links = new Set<Link>();

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Starts a proxy to `host:port` on a free local port. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return new TcpProxy(server, target);
  }

  /** Starts a proxy to the server of a `postgres://` (or any host:port) URL. */
  static forUrl(url: string): Promise<TcpProxy> {
    const parsed = new URL(url);
    return TcpProxy.start({ host: parsed.hostname, port: Number(parsed.port || 5432) });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  stall(): void {
    this.mode = 'stalled';
    for (const link of this.links) {
      link.client.pause();
      link.upstream.pause();
    }
  }

  cut(): void {
    this.mode = 'cut';
    this.dropAll();
  }

  restore(): void {
    this.mode = 'pass';
    for (const link of this.links) {
      link.client.resume();
      link.upstream.resume();
    }
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    this.mode = 'cut';
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    const link: Link = { client, upstream };
    this.links.add(link);
    const drop = () => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', drop);
      socket.on('close', drop);
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
    if (this.mode === 'stalled') {
      // A frozen server still accepts connections; it just never answers.
      client.pause();
      upstream.pause();
    }
  }

  private forward(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        // Back-pressure must not undo a stall.
        to.once('drain', () => {
          if (this.mode === 'pass') {
            from.resume();
          }
        });
      }
    });
    from.on('end', () => to.end());
  }

  private dropAll(): void {
    for (const { client, upstream } of this.links) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.links.clear();
  }
}

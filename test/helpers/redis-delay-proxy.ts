import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A TCP proxy in front of a redis-server that holds chunks back, in order, to make Redis slow for one client. */
export interface RedisDelayProxy {
  /** `redis://127.0.0.1:<port>` of the proxy. */
  readonly url: string;
  /** Chunks held back so far, per direction. */
  readonly delayed: { toServer: number; toClient: number };
  /** Closes the proxy and every connection through it. */
  close(): Promise<void>;
}

/** Delay for one chunk, ms (0 passes it on as soon as the chunks before it have gone). */
export type ChunkDelay = (chunk: Buffer) => number;

/**
 * Listens on a free 127.0.0.1 port and forwards to `targetPort`, delaying each chunk by what `toServer` or
 * `toClient` returns for it. Order is kept per direction: a chunk never overtakes the one before it.
 */
export function startRedisDelayProxy(targetPort: number, delays: { toServer?: ChunkDelay; toClient?: ChunkDelay }): Promise<RedisDelayProxy> {
  const sockets = new Set<Socket>();
  const delayed = { toServer: 0, toClient: 0 };
  const pipe = (from: Socket, to: Socket, delay: ChunkDelay | undefined, direction: 'toServer' | 'toClient'): void => {
    const queue: { at: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | null = null;
    const drain = (): void => {
      timer = null;
      while (queue.length > 0 && queue[0].at <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, queue[0].at - Date.now());
    };
    // Chunks still held when either side closes are dropped with their timer, so that closing the proxy ends its work.
    const forget = (): void => {
      if (timer) clearTimeout(timer);
      timer = null;
      queue.length = 0;
    };
    from.on('close', forget);
    to.on('close', forget);
    from.on('data', (chunk: Buffer) => {
      const ms = delay?.(chunk) ?? 0;
      if (ms > 0) delayed[direction]++;
      queue.push({ at: Math.max(Date.now() + ms, queue.at(-1)?.at ?? 0), chunk });
      if (!timer) drain();
    });
  };
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    pipe(client, upstream, delays.toServer, 'toServer');
    pipe(upstream, client, delays.toClient, 'toClient');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        url: `redis://127.0.0.1:${port}`,
        delayed,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

import { duplicateRedisClient } from './duplicate-redis-client';
import { randomBytes } from 'node:crypto';
import { GatewayOptionsError } from '../core/errors/gateway-options.error';
import { ShardCommandError } from '../core/errors/shard-command.error';
import { closeRedisClient, createRedisClient } from './create-redis-client';
import { redisKey, redisKeyPrefix, type RedisClient, type RedisConnectionOptions } from './redis-options.interface';

/** Runs a command for a shard this process owns, on behalf of another process. */
export type ShardCommandHandler = (method: string, shardId: number, args: unknown) => Promise<unknown>;

/** Options of {@link RedisCommandBus}. */
export type RedisCommandBusOptions = RedisConnectionOptions & {
  /** This process's member id (the one its shard leases carry). */
  memberId: string;
  /** The member that owns a shard now, or null (e.g. `ShardOwnership.ownerOf`). */
  ownerOf: (shardId: number) => Promise<string | null>;
  /** How long a request waits for its reply, ms. @defaultValue `5000` */
  timeoutMs?: number;
  /** Receives a line when an incoming message cannot be read or a reply cannot be sent. */
  log?: (message: string) => void;
};

interface Request {
  k: 'req';
  id: string;
  from: string;
  shardId: number;
  method: string;
  args: unknown;
}

interface Reply {
  k: 'res';
  id: string;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; option?: string };
}

interface Pending {
  shardId: number;
  owner: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Commands for shards that another process owns, over Redis pub/sub. Each member listens on its own channel
 * (`{<keyPrefix>}:bus:<memberId>`); a request names the shard, the method and its arguments (JSON) and carries a
 * correlation id, and the owner answers on the requester's channel with the result or the error.
 *
 * Requests fail with a {@link ShardCommandError} that says why: no process owns the shard, its owner is not
 * listening (known at once on a single Redis; on a Redis Cluster, where PUBLISH reaches every node but counts the
 * listeners of one, it shows as the timeout), or it did not answer within the timeout. Errors raised on the owner
 * come back with their message.
 */
export class RedisCommandBus {
  /** This process's member id. */
  readonly memberId: string;
  /** The prefix of every channel used. */
  readonly keyPrefix: string;
  private readonly publisher: RedisClient;
  private readonly ownsClient: boolean;
  private readonly ownerOf: (shardId: number) => Promise<string | null>;
  private readonly timeoutMs: number;
  private readonly log: (message: string) => void;
  private readonly pending = new Map<string, Pending>();
  private subscriber: RedisClient | null = null;
  private handler: ShardCommandHandler | null = null;
  private counter = 0;
  private readonly idPrefix = randomBytes(6).toString('hex');
  private closed = false;

  constructor(options: RedisCommandBusOptions) {
    const timeoutMs = options.timeoutMs ?? 5_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new Error(`RedisCommandBus: timeoutMs must be an integer >= 1, got ${String(timeoutMs)}`);
    }
    this.memberId = options.memberId;
    this.keyPrefix = redisKeyPrefix(options);
    this.ownerOf = options.ownerOf;
    this.timeoutMs = timeoutMs;
    this.log = options.log ?? (() => undefined);
    const { client, owned } = createRedisClient(options);
    this.publisher = client;
    this.ownsClient = owned;
    if (owned) client.on('error', (error: Error) => this.log(`command bus: ${error.message}`));
  }

  /** The channel a member listens on. */
  channel(memberId: string): string {
    return redisKey(this.keyPrefix, 'bus', memberId);
  }

  /** Sets what runs the requests addressed to this process. Without one, they are answered with an error. */
  setHandler(handler: ShardCommandHandler): void {
    this.handler = handler;
  }

  /** Starts listening on this member's channel (on a second connection, as pub/sub needs one of its own). */
  async start(): Promise<void> {
    if (this.subscriber || this.closed) return;
    const subscriber = duplicateRedisClient(this.publisher);
    this.subscriber = subscriber;
    subscriber.on('message', (_channel: string, message: string) => this.onMessage(message));
    subscriber.on('error', (error: Error) => this.log(`command bus: ${error.message}`));
    await subscriber.subscribe(this.channel(this.memberId));
  }

  /**
   * Runs `method` for `shardId` on the process that owns the shard and resolves with its result.
   * @throws {@link ShardCommandError} when no process owns the shard, its owner does not listen or does not
   * answer within `timeoutMs`, or the command failed there.
   */
  async request<T = unknown>(shardId: number, method: string, args: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.closed) throw new ShardCommandError(shardId, 'the command bus is closed');
    const owner = await this.ownerOf(shardId);
    if (owner === null) throw new ShardCommandError(shardId, 'no process owns this shard right now');
    const id = `${this.idPrefix}-${++this.counter}`;
    const request: Request = { k: 'req', id, from: this.memberId, shardId, method, args };
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ShardCommandError(shardId, `its owner (${owner}) did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { shardId, owner, resolve, reject, timer });
    });
    let receivers: number;
    try {
      receivers = await this.publisher.publish(this.channel(owner), JSON.stringify(request));
    } catch (error) {
      this.settle(id, (p) => p.reject(new ShardCommandError(shardId, `could not reach its owner (${owner}): ${(error as Error).message}`)));
      return (await reply) as T;
    }
    // On a Redis Cluster, PUBLISH counts the receivers of the node it reached only (the message goes to every node):
    // there, a 0 is not proof that the owner is deaf, and a silent owner is found by the timeout.
    if (receivers === 0 && !this.publisher.isCluster) {
      this.settle(id, (p) => p.reject(new ShardCommandError(shardId, `its owner (${owner}) is not listening for commands`)));
    }
    return (await reply) as T;
  }

  /** Stops listening, fails the requests still waiting, and quits the client when it was created from a `url`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(new Error('The command bus was closed')));
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await closeRedisClient(subscriber);
    if (this.ownsClient) await closeRedisClient(this.publisher);
  }

  // ---- internals ----------------------------------------------------------------------------------

  private settle(id: string, action: (pending: Pending) => void): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    action(pending);
  }

  private onMessage(message: string): void {
    let parsed: Request | Reply;
    try {
      parsed = JSON.parse(message) as Request | Reply;
    } catch {
      this.log('command bus: ignored a message that is not JSON');
      return;
    }
    if (parsed?.k === 'res' && typeof parsed.id === 'string') {
      const reply = parsed;
      this.settle(reply.id, (p) => (reply.ok ? p.resolve(reply.value) : p.reject(remoteError(p, reply.error))));
    } else if (parsed?.k === 'req' && typeof parsed.id === 'string' && typeof parsed.from === 'string') {
      void this.answer(parsed);
    }
  }

  private async answer(request: Request): Promise<void> {
    let reply: Reply;
    try {
      if (!this.handler) throw new ShardCommandError(request.shardId, 'this process runs no commands for other processes');
      const value = await this.handler(request.method, request.shardId, request.args);
      reply = { k: 'res', id: request.id, ok: true, value: value === undefined ? null : value };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      reply = {
        k: 'res',
        id: request.id,
        ok: false,
        error: { name: err.name, message: err.message, option: err instanceof GatewayOptionsError ? err.option : undefined },
      };
    }
    if (this.closed) return;
    try {
      await this.publisher.publish(this.channel(request.from), JSON.stringify(reply));
    } catch (error) {
      this.log(`command bus: could not answer ${request.method} for shard ${request.shardId}: ${(error as Error).message}`);
    }
  }
}

/** The error a failed reply stands for: an options error stays one; anything else is a `ShardCommandError`. */
function remoteError(pending: Pending, error: Reply['error']): Error {
  const message = error?.message ?? 'the command failed on its owner';
  if (error?.name === 'GatewayOptionsError' && error.option) {
    return new GatewayOptionsError(error.option, message.replace(/^Invalid option "[^"]*": /, ''));
  }
  if (error?.name === 'ShardCommandError') {
    return new ShardCommandError(pending.shardId, `${message.replace(/^Shard \d+: /, '')} (on ${pending.owner})`);
  }
  return new ShardCommandError(pending.shardId, `failed on its owner (${pending.owner}): ${message}`);
}

import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOptionsError, ShardCommandError } from '../../lib/core';
import { RedisCommandBus, type ShardCommandHandler } from '../../lib/redis';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';

let server: RunningRedisServer;
let buses: RedisCommandBus[] = [];
let prefixCount = 0;

/** Who owns which shard, as the buses are told. */
const owners = new Map<number, string>();

function busFor(memberId: string, keyPrefix: string, handler?: ShardCommandHandler, timeoutMs = 2_000): RedisCommandBus {
  const bus = new RedisCommandBus({
    url: server.url,
    keyPrefix,
    memberId,
    timeoutMs,
    ownerOf: async (shardId) => owners.get(shardId) ?? null,
  });
  if (handler) bus.setHandler(handler);
  buses.push(bus);
  return bus;
}

function freshPrefix(): string {
  return `ndg-test:bus:${process.pid}:${++prefixCount}`;
}

function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('Expected a rejection');
    },
    (error: unknown) => error,
  );
}

void describe('RedisCommandBus', () => {
  before(async () => {
    server = await startRedisServer();
  });

  afterEach(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    buses = [];
    owners.clear();
  });

  after(async () => {
    await server?.stop();
  });

  void it('runs a call on the member that owns the shard and returns its result', async () => {
    const prefix = freshPrefix();
    const calls: unknown[] = [];
    const owner = busFor('owner', prefix, async (method, shardId, args) => {
      calls.push({ method, shardId, args });
      return { ranOn: 'owner', shardId };
    });
    const other = busFor('other', prefix, async () => ({ ranOn: 'other' }));
    const asker = busFor('asker', prefix);
    await Promise.all([owner.start(), other.start(), asker.start()]);
    owners.set(5, 'owner');

    const result = await asker.request(5, 'send', { op: 3, d: { status: 'idle' } });
    expect(result).toEqual({ ranOn: 'owner', shardId: 5 });
    expect(calls).toEqual([{ method: 'send', shardId: 5, args: { op: 3, d: { status: 'idle' } } }]);
  });

  void it('fails clearly when no member owns the shard', async () => {
    const asker = busFor('asker', freshPrefix());
    await asker.start();
    const error = await rejectionOf(asker.request(3, 'send', {}));
    expect(error).toBeInstanceOf(ShardCommandError);
    expect((error as Error).message).toBe('Shard 3: no process owns this shard right now');
  });

  void it('fails at once when the owner does not listen, and after the timeout when it does not answer', async () => {
    const prefix = freshPrefix();
    const asker = busFor('asker', prefix, undefined, 300);
    await asker.start();
    owners.set(1, 'gone');
    const started = Date.now();
    const notListening = await rejectionOf(asker.request(1, 'send', {}));
    expect((notListening as Error).message).toBe('Shard 1: its owner (gone) is not listening for commands');
    expect(Date.now() - started).toBeLessThan(300);

    const slow = busFor('slow', prefix, () => new Promise(() => undefined));
    await slow.start();
    owners.set(2, 'slow');
    const timedOut = await rejectionOf(asker.request(2, 'requestGuildMembers', { guildId: '1' }));
    expect(timedOut).toBeInstanceOf(ShardCommandError);
    expect((timedOut as Error).message).toBe('Shard 2: its owner (slow) did not answer requestGuildMembers within 300 ms');
  });

  void it('brings the owner’s errors back: options errors keep their option, others name the owner', async () => {
    const prefix = freshPrefix();
    const owner = busFor('owner', prefix, async (method, shardId) => {
      if (method === 'send') throw new GatewayOptionsError('presence.status', 'must be one of online, idle');
      throw new ShardCommandError(shardId, 'the shard was closed before this could complete');
    });
    const asker = busFor('asker', prefix);
    await Promise.all([owner.start(), asker.start()]);
    owners.set(0, 'owner');

    const optionsError = await rejectionOf(asker.request(0, 'send', {}));
    expect(optionsError).toBeInstanceOf(GatewayOptionsError);
    expect((optionsError as GatewayOptionsError).option).toBe('presence.status');
    expect((optionsError as Error).message).toBe('Invalid option "presence.status": must be one of online, idle');

    const commandError = await rejectionOf(asker.request(0, 'requestGuildMembers', {}));
    expect(commandError).toBeInstanceOf(ShardCommandError);
    expect((commandError as Error).message).toBe('Shard 0: the shard was closed before this could complete (on owner)');
  });

  void it('close() fails the requests still waiting', async () => {
    const prefix = freshPrefix();
    const owner = busFor('owner', prefix, () => new Promise(() => undefined));
    const asker = busFor('asker', prefix);
    await Promise.all([owner.start(), asker.start()]);
    owners.set(0, 'owner');
    const pending = rejectionOf(asker.request(0, 'send', {}));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await asker.close();
    expect(((await pending) as Error).message).toBe('The command bus was closed');
  });
});

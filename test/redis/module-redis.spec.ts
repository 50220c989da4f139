import { describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes, PresenceUpdateStatus } from 'discord-api-types/v10';
import Redis from 'ioredis';
import { ClusterService, GatewayModule, ShardService, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import type { LocalGateway } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { useRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
let server: RunningRedisServer;
let redis: Redis;
let prefixCount = 0;

function freshPrefix(): string {
  return `ndg-test:module:${process.pid}:${++prefixCount}`;
}

function appWith(gateway: LocalGateway, extra: Partial<GatewayModuleOptions>) {
  return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, extra))] }, new CapturingLogger());
}

void describe('GatewayModule with redis', () => {
  useRedisServer((started) => ({ server, redis } = started), () => harness.cleanup());

  void it('uses the Redis identify queue and session store by default: a restarted app resumes from Redis', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const keyPrefix = freshPrefix();
    const options = { redis: { url: server.url }, keyPrefix, shards: { total: 2, from: 0, to: 1 }, sessionSaveIntervalMs: 100 };
    const first = await appWith(gateway, options);
    expect(await redis.exists(`{${keyPrefix}}:identify:grant:0`)).toBe(1);
    await harness.closeApp(first);
    const saved = JSON.parse((await redis.get(`{${keyPrefix}}:session:1`))!);
    expect(saved.sessionId).toBe(gateway.sessionOf(1));

    await appWith(gateway, options);
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(2);
    expect(gateway.framesOf(GatewayOpcodes.Resume).map((f) => f.shardId).sort()).toEqual([0, 1]);
  });

  void it('leaves a given client open when the app closes', async () => {
    const gateway = await harness.gateway();
    const client = new Redis(server.url);
    try {
      const app = await appWith(gateway, { redis: { client }, keyPrefix: freshPrefix() });
      await harness.closeApp(app);
      expect(client.status).toBe('ready');
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  void it('with ownership, two apps split the shards and ShardService (commands, member and channel info requests) reaches the other app’s shard', async () => {
    const gateway = await harness.gateway({ shards: 2, membersPerGuild: 3 });
    const keyPrefix = freshPrefix();
    const options = (memberId: string): Partial<GatewayModuleOptions> => ({
      redis: { url: server.url },
      keyPrefix,
      memberId,
      shards: { total: 2, ownership: 'redis' },
      leaseTtlMs: 900,
    });
    const a = await appWith(gateway, options('a'));
    const b = await appWith(gateway, options('b'));
    const ready = (app: typeof a) => app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).length;
    await eventually(() => ready(a) === 1 && ready(b) === 1, 8_000, 'one shard each');
    const shardOfB = b.get(ClusterService).info()[0].id;

    // A raw command and a member request for B's shard, through A.
    const from = gateway.frames.length;
    await a.get(ShardService).send(shardOfB, { op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: PresenceUpdateStatus.DoNotDisturb, afk: false } });
    const frame = await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, from);
    expect(frame.shardId).toBe(shardOfB);
    expect(frame.connectionId).toBe(gateway.connectionOf(shardOfB)!.id);

    const guildId = guildOn(shardOfB, 2);
    const result = await a.get(ShardService).requestGuildMembers({ guildId, query: '', limit: 0, timeoutMs: 3_000 });
    expect(result.guildId).toBe(guildId);
    expect(result.members).toHaveLength(3);
    const request = gateway.framesOf(GatewayOpcodes.RequestGuildMembers).at(-1)!;
    expect(request.shardId).toBe(shardOfB);

    // Request Channel Info runs on B too, where its CHANNEL_INFO arrives.
    gateway.setChannelInfo(guildId, [{ id: '155101607195836416', status: 'on b' }]);
    const info = await a.get(ShardService).requestChannelInfo(guildId, { timeoutMs: 3_000 });
    expect(info).toEqual({ guild_id: guildId, channels: [{ id: '155101607195836416', status: 'on b' }] });
    expect(gateway.framesOf(GatewayOpcodes.RequestChannelInfo).map((f) => f.shardId)).toEqual([shardOfB]);

    // setPresence without a shard id reaches every shard of the bot, wherever it runs.
    const before = gateway.frames.length;
    await a.get(ShardService).setPresence({ status: PresenceUpdateStatus.Idle, activities: [], since: null, afk: false });
    await eventually(
      () => new Set(gateway.frames.slice(before).filter((f) => f.op === GatewayOpcodes.PresenceUpdate).map((f) => f.shardId)).size === 2,
      2_000,
      'presence on both shards',
    );
  });
});

/** A guild id that Discord routes to `shardId` of `total`. */
function guildOn(shardId: number, total: number): string {
  let k = 81384788765712384n >> 22n;
  while (Number(k % BigInt(total)) !== shardId) k++;
  return ((k << 22n) | 0x1234n).toString();
}

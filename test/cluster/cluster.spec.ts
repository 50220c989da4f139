import { describe, it, beforeEach, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayIntentBits, GatewayOpcodes, PresenceUpdateStatus, type GatewaySendPayload } from 'discord-api-types/v10';
import { Cluster, type ClusterShardInfo, type ShardStateChange } from '../../lib/core/cluster/cluster';
import type { GuildsReadyEvent } from '../../lib/core/cluster/guild-availability';
import { GatewayFatalError } from '../../lib/core/errors/gateway-fatal.error';
import { SessionStartLimitError } from '../../lib/core/errors/session-start-limit.error';
import type { ClusterOptions } from '../../lib/core/interfaces/cluster-options.interface';
import { InMemoryIdentifyQueue } from '../../lib/core/queue/in-memory-identify-queue';
import { ShardState } from '../../lib/core/shard/shard-state';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { TEST_HEARTBEAT_MS, eventually, heartbeatRoundTrip, waitFor } from '../helpers/gateway-test-kit';
import { CLUSTER_TEST_INTENTS, ClusterHarness, SHORT_CLUSTER_OPTIONS, rejectionOf } from '../helpers/cluster-test-kit';

const OP_IDENTIFY = GatewayOpcodes.Identify;
const OP_RESUME = GatewayOpcodes.Resume;
const INTENTS = CLUSTER_TEST_INTENTS;

const SHORT_SHARD_OPTIONS = SHORT_CLUSTER_OPTIONS;

const harness = new ClusterHarness();
const gatewayWith = (options?: LocalGatewayOptions) => harness.gatewayWith(options);
const clusterOn = (gateway: LocalGateway, options?: Partial<ClusterOptions>) => harness.clusterOn(gateway, options);

/** A guild id (a realistic snowflake) that Discord routes to `shardId` of `total`. */
function guildOn(shardId: number, total: number, salt = 0): string {
  const base = 81384788765712384n >> 22n;
  let k = base + BigInt(salt * total);
  while (Number(k % BigInt(total)) !== shardId) k++;
  return ((k << 22n) | 0x1234n).toString();
}

function stateOf(cluster: Cluster, shardId: number): ShardState | undefined {
  return cluster.info().find((info) => info.id === shardId)?.state;
}

void afterEach(async () => {
  await harness.closeAll();
});

/**
 * Each IDENTIFY as the cluster sends it: shard id and time of sending (the debug line the shard writes as it sends).
 * Spacing is checked here, where the identify queue decides it: the gateway stamps frames when it reads them, which a
 * busy machine delays by different amounts.
 */
function identifiesSent(cluster: Cluster): { shardId: number; at: number }[] {
  const sent: { shardId: number; at: number }[] = [];
  cluster.debug$.subscribe((entry) => {
    if (entry.shardId !== null && /^identifying as shard/.test(entry.message)) sent.push({ shardId: entry.shardId, at: Date.now() });
  });
  return sent;
}

void describe('Cluster start', () => {
  void it('starts 8 shards with max_concurrency 2 in buckets, one IDENTIFY per key per window', async () => {
    const WINDOW_MS = 500;
    const gateway = await gatewayWith({ shards: 8, sessionStartLimit: { max_concurrency: 2 } });
    const cluster = clusterOn(gateway, { identifyWindowMs: WINDOW_MS });
    const identifies = identifiesSent(cluster);
    const startedAt = Date.now();
    await cluster.up();
    const tookMs = Date.now() - startedAt;

    expect(identifies.map((f) => f.shardId).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gateway.framesOf(OP_IDENTIFY).map((f) => f.shardId).sort((a, b) => a! - b!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    // Never two IDENTIFYs of one rate-limit key within one window.
    for (const key of [0, 1]) {
      const times = identifies.filter((f) => f.shardId % 2 === key).map((f) => f.at);
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(WINDOW_MS);
    }
    // Buckets in order: shards 0,1 before 2,3 before 4,5 before 6,7.
    const buckets = identifies.map((f) => Math.floor(f.shardId / 2));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    // The two shards of one bucket identify together.
    for (let bucket = 0; bucket < 4; bucket++) {
      const [a, b] = identifies.filter((f) => Math.floor(f.shardId / 2) === bucket);
      expect(Math.abs(a.at - b.at)).toBeLessThan(WINDOW_MS / 2);
    }
    // ceil(8 / 2) = 4 windows (the pairs above identify together), at least 3 spacings long.
    expect(tookMs).toBeGreaterThan(3 * WINDOW_MS);

    expect(cluster.total).toBe(8);
    const info = cluster.info();
    expect(info.map((i) => i.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const shard of info) {
      expect(shard.state).toBe(ShardState.Ready);
      expect(shard.total).toBe(8);
      expect(shard.sessionId).toBe(gateway.sessionOf(shard.id));
    }
  });

  void it('keeps bucket order when the HELLOs arrive in reverse order', async () => {
    const WINDOW_MS = 300;
    const gateway = await gatewayWith({ shards: 4, sessionStartLimit: { max_concurrency: 2 } });
    gateway.behaviour.sendHello = false;
    const cluster = clusterOn(gateway, { identifyWindowMs: WINDOW_MS });
    const identifies = identifiesSent(cluster);
    const up = cluster.up();
    await eventually(() => gateway.connections.length === 4, 15_000, 'four connections');
    for (const connection of [...gateway.connections].reverse()) {
      connection.send({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: TEST_HEARTBEAT_MS } });
      // The shard has handled its HELLO (and asked for its grant) once it answers a heartbeat request sent after it.
      await heartbeatRoundTrip(gateway, connection);
    }
    await up;

    const buckets = identifies.map((f) => Math.floor(f.shardId / 2));
    expect(buckets).toEqual([0, 0, 1, 1]);
    // One IDENTIFY per rate-limit key per window.
    for (const key of [0, 1]) {
      const [first, second] = identifies.filter((f) => f.shardId % 2 === key);
      expect(second.at - first.at).toBeGreaterThanOrEqual(WINDOW_MS);
    }
    expect(gateway.framesOf(OP_IDENTIFY)).toHaveLength(4);
    expect(cluster.info().every((info) => info.state === ShardState.Ready)).toBe(true);
  });

  void it('waits for the session-start limit to reset when told to, and says so', async () => {
    const RESET_MS = 600;
    const gateway = await gatewayWith({ sessionStartLimit: { remaining: 0, reset_after: RESET_MS } });
    const cluster = clusterOn(gateway, { waitForSessionStartLimit: true });
    const debug: string[] = [];
    cluster.debug$.subscribe((entry) => {
      if (entry.shardId === null) debug.push(entry.message);
    });
    const startedAt = Date.now();
    const up = cluster.up();

    await eventually(() => debug.some((line) => /waiting \d+ ms for it to reset/.test(line)), 15_000, 'the limit wait line');
    expect(gateway.framesOf(OP_IDENTIFY)).toHaveLength(0);
    await up;
    const [identify] = gateway.framesOf(OP_IDENTIFY);
    expect(identify.at - startedAt).toBeGreaterThanOrEqual(RESET_MS - 20);
    expect(stateOf(cluster, 0)).toBe(ShardState.Ready);
  });

  void it('refuses to start more shards than session_start_limit.remaining allows', async () => {
    const gateway = await gatewayWith({ shards: 2, sessionStartLimit: { remaining: 1, reset_after: 3_600_000 } });
    const cluster = clusterOn(gateway);
    const error = await rejectionOf(cluster.up());
    expect(error).toBeInstanceOf(SessionStartLimitError);
    expect(error.message).toContain('session_start_limit.remaining');
    expect(error.message).toContain('waitForSessionStartLimit');
    expect((error as SessionStartLimitError).needed).toBe(2);
    expect((error as SessionStartLimitError).remaining).toBe(1);
    // up() checks the budget before it opens any connection, and has settled: nothing was opened.
    expect(gateway.framesOf(OP_IDENTIFY)).toHaveLength(0);
    expect(gateway.connections).toHaveLength(0);
    expect(cluster.info()).toHaveLength(0);
  });

  void it('runs only the shards its scheme lists, with the scheme total', async () => {
    const gateway = await gatewayWith({ shards: 1 });
    const cluster = clusterOn(gateway, { shards: { total: 5, ids: [4, 2] } });
    await cluster.up();
    expect(cluster.total).toBe(5);
    expect([...cluster.shards.keys()]).toEqual([2, 4]);
    expect(gateway.framesOf(OP_IDENTIFY).map((f) => f.d.shard).sort()).toEqual([
      [2, 5],
      [4, 5],
    ]);
  });
});

void describe('Cluster routing', () => {
  const TOTAL = 3;
  let gateway: LocalGateway;
  let cluster: Cluster;

  void beforeEach(async () => {
    gateway = await gatewayWith({ shards: TOTAL });
    cluster = clusterOn(gateway);
    await cluster.up();
  });

  void it('computes a guild shard from the snowflake', () => {
    const id = '81384788765712384';
    expect(cluster.shardIdForGuild(id)).toBe(Number((BigInt(id) >> 22n) % BigInt(TOTAL)));
    for (let shard = 0; shard < TOTAL; shard++) expect(cluster.shardIdForGuild(guildOn(shard, TOTAL))).toBe(shard);
  });

  void it('keeps a shard paused until every holder that paused it has resumed it', async () => {
    const seen: number[] = [];
    cluster.dispatch$.subscribe((event) => {
      if (event.t === 'MESSAGE_CREATE') seen.push(event.s);
    });
    cluster.pause(1, 'router');
    cluster.pause(1, 'stream-publisher');
    cluster.pause(1);
    const sent = gateway.dispatch(1, 'MESSAGE_CREATE', { id: '1', content: 'held' });
    cluster.resume(1, 'router');
    cluster.resume(1);
    expect(cluster.shards.get(1)!.info().paused).toBe(true);
    cluster.resume(1, 'router');
    expect(cluster.shards.get(1)!.info().paused).toBe(true);
    cluster.resume(1, 'stream-publisher');
    expect(cluster.shards.get(1)!.info().paused).toBe(false);
    await eventually(() => seen.includes(sent), 15_000, 'the held event delivered');
    // Another shard is not affected by shard 1's holders.
    cluster.pause(2, 'router');
    cluster.resume(2);
    expect(cluster.shards.get(2)!.info().paused).toBe(true);
    cluster.resume(2, 'router');
    expect(cluster.shards.get(2)!.info().paused).toBe(false);
  });

  void it('sends a guild command over the connection of the shard that owns the guild', async () => {
    for (const target of [2, 0, 1]) {
      const guildId = guildOn(target, TOTAL, target + 7);
      const command: GatewaySendPayload = {
        op: GatewayOpcodes.VoiceStateUpdate,
        d: { guild_id: guildId, channel_id: null, self_mute: false, self_deaf: false },
      };
      const arrived = gateway.waitForFrame((f) => f.op === GatewayOpcodes.VoiceStateUpdate && f.d?.guild_id === guildId);
      await cluster.sendToGuild(guildId, command);
      const frame = await arrived;
      expect(frame.shardId).toBe(target);
      expect(frame.connectionId).toBe(gateway.connectionOf(target)!.id);
    }
    expect(gateway.framesOf(GatewayOpcodes.VoiceStateUpdate)).toHaveLength(3);
  });

  void it('sends a per-shard presence only to that shard', async () => {
    const presence: GatewaySendPayload = {
      op: GatewayOpcodes.PresenceUpdate,
      d: { since: null, activities: [], status: PresenceUpdateStatus.Idle, afk: false },
    };
    await cluster.send(1, presence);
    await gateway.waitForFrame((f) => f.op === GatewayOpcodes.PresenceUpdate, 15_000, 0);
    // Shards 0 and 2 answered a heartbeat request: a presence sent on them before would be recorded by now.
    await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 2)]);
    const frames = gateway.framesOf(GatewayOpcodes.PresenceUpdate);
    expect(frames).toHaveLength(1);
    expect(frames[0].shardId).toBe(1);
    expect(frames[0].d.status).toBe('idle');
  });

  void it('rejects a command for a shard it does not run, naming the shard', async () => {
    const presence: GatewaySendPayload = {
      op: GatewayOpcodes.PresenceUpdate,
      d: { since: null, activities: [], status: PresenceUpdateStatus.Online, afk: false },
    };
    const error = await rejectionOf(cluster.send(7, presence));
    expect(error.message).toMatch(/shard 7/);
    await Promise.all([0, 1, 2].map((id) => heartbeatRoundTrip(gateway, id)));
    expect(gateway.framesOf(GatewayOpcodes.PresenceUpdate)).toHaveLength(0);
  });
});

void describe('Cluster health', () => {
  void it('shows a dropped shard as reconnecting, then ready again after it resumed', async () => {
    const gateway = await gatewayWith({ shards: 2 });
    const cluster = clusterOn(gateway);
    await cluster.up();
    const changes: ShardStateChange[] = [];
    let whileDown: ClusterShardInfo | undefined;
    cluster.state$.subscribe((change) => {
      changes.push(change);
      if (change.shardId === 1 && change.state === ShardState.Disconnected && !whileDown) {
        whileDown = cluster.info().find((i) => i.id === 1);
      }
    });
    const resumesBefore = gateway.framesOf(OP_RESUME, 1).length;

    gateway.dropShard(1);
    await eventually(() => changes.some((c) => c.shardId === 1 && c.state === ShardState.Ready), 15_000, 'shard 1 to be ready again');

    // While it was down, info() showed it as such.
    expect(whileDown?.state).toBe(ShardState.Disconnected);
    expect(whileDown?.lastClose?.code).toBe(1006);
    expect(whileDown?.reconnectAttempts).toBe(1);
    // Then it resumed and is healthy again.
    const shard1 = cluster.info().find((i) => i.id === 1)!;
    expect(shard1.state).toBe(ShardState.Ready);
    expect(shard1.lastClose?.code).toBe(1006);
    // The attempt counter goes back to 0 only once the new connection has stayed healthy for a while.
    expect(shard1.reconnectAttempts).toBe(1);
    expect(shard1.sessionId).toBe(whileDown?.sessionId);
    expect(gateway.framesOf(OP_RESUME, 1).length).toBe(resumesBefore + 1);
    const seen = changes.filter((c) => c.shardId === 1).map((c) => c.state);
    expect(seen).toContain(ShardState.Disconnected);
    expect(seen).toContain(ShardState.Resuming);
    expect(seen[seen.length - 1]).toBe(ShardState.Ready);
    // The other shard never left ready.
    expect(changes.filter((c) => c.shardId === 0)).toHaveLength(0);
    expect(cluster.info().find((i) => i.id === 0)!.lastClose).toBeNull();
  });

  void it('restarts one shard on request: new connection, RESUME, ready', async () => {
    const gateway = await gatewayWith({ shards: 2 });
    const cluster = clusterOn(gateway);
    await cluster.up();
    const oldConnection = gateway.connectionOf(0)!.id;
    const sessionId = gateway.sessionOf(0);

    await cluster.restart(0);
    expect(stateOf(cluster, 0)).toBe(ShardState.Ready);
    const resumes = gateway.framesOf(OP_RESUME, 0);
    expect(resumes).toHaveLength(1);
    expect(resumes[0].connectionId).toBeGreaterThan(oldConnection);
    expect(resumes[0].d.session_id).toBe(sessionId);
    expect(gateway.framesOf(OP_IDENTIFY, 0)).toHaveLength(1);
    expect(gateway.framesOf(OP_RESUME, 1)).toHaveLength(0);
  });

  void it('marks a shard closed with a fatal code as fatally closed and keeps the others ready', async () => {
    const gateway = await gatewayWith({ shards: 3 });
    const cluster = clusterOn(gateway);
    await cluster.up();
    const changes: ShardStateChange[] = [];
    const errors: Error[] = [];
    cluster.state$.subscribe((change) => changes.push(change));
    cluster.error$.subscribe((error) => errors.push(error));
    const connectionsBefore = gateway.connections.length;
    const reconnectLines: string[] = [];
    cluster.debug$.subscribe((entry) => {
      if (entry.shardId === 1 && /reconnect attempt/.test(entry.message)) reconnectLines.push(entry.message);
    });

    gateway.closeShard(1, 4014, 'Disallowed intent(s).');
    await eventually(() => stateOf(cluster, 1) === ShardState.FatallyClosed, 15_000, 'shard 1 to close for good');
    expect(changes).toContainEqual({ shardId: 1, state: ShardState.FatallyClosed });
    const fatal = errors.find((e) => e instanceof GatewayFatalError) as GatewayFatalError | undefined;
    expect(fatal?.shardId).toBe(1);
    expect(fatal?.code).toBe(4014);

    // The reconnect decision is taken with the close: a reconnect would have been scheduled, and said so, by now.
    expect(reconnectLines).toEqual([]);
    await Promise.all([heartbeatRoundTrip(gateway, 0), heartbeatRoundTrip(gateway, 2)]);
    expect(gateway.connections.length).toBe(connectionsBefore);
    expect(stateOf(cluster, 0)).toBe(ShardState.Ready);
    expect(stateOf(cluster, 2)).toBe(ShardState.Ready);
    expect(changes.filter((c) => c.shardId !== 1)).toHaveLength(0);
    const error = await rejectionOf(cluster.send(1, { op: GatewayOpcodes.PresenceUpdate, d: { since: null, activities: [], status: PresenceUpdateStatus.Online, afk: false } }));
    expect(error).toBeInstanceOf(GatewayFatalError);
  });

  void it('rejects up() naming the shard and the reason when disallowed intents close it', async () => {
    const gateway = await gatewayWith({ shards: 2, allowedPrivilegedIntents: 0 });
    const cluster = clusterOn(gateway, { intents: INTENTS | GatewayIntentBits.GuildMembers });
    const error = await rejectionOf(cluster.up());
    expect(error).toBeInstanceOf(GatewayFatalError);
    expect(error.message).toMatch(/Shard [01]\b/);
    expect(error.message).toMatch(/4014/);
    expect(error.message).toMatch(/disallowed intents/);
  });

  void it('rejects up() on a wrong token without asking GET /gateway/bot when URL, queue and shards are given', async () => {
    const gateway = await gatewayWith();
    const cluster = new Cluster({
      token: 'not-the-token',
      intents: INTENTS,
      gatewayUrl: gateway.url,
      // Unreachable: a request here would fail with an HTTP error rather than a close code.
      apiUrl: 'http://127.0.0.1:1/api',
      identifyQueue: new InMemoryIdentifyQueue({ windowMs: 50 }),
      shards: { total: 4, ids: [3] },
      ...SHORT_SHARD_OPTIONS,
    });
    harness.track(cluster);
    const error = await rejectionOf(cluster.up());
    expect(error).toBeInstanceOf(GatewayFatalError);
    expect((error as GatewayFatalError).shardId).toBe(3);
    expect(error.message).toMatch(/Shard 3/);
    expect(error.message).toMatch(/4004/);
    expect(error.message).toMatch(/authentication failed/);
    expect(error.message).not.toContain('not-the-token');
    const identify = gateway.framesOf(OP_IDENTIFY);
    expect(identify).toHaveLength(1);
    expect(identify[0].d.shard).toEqual([3, 4]);
    expect(stateOf(cluster, 3)).toBe(ShardState.FatallyClosed);
  });
});

void describe('Cluster guild availability', () => {
  void it('fires guildsReady$ per shard once every READY guild arrived, and counts them', async () => {
    const TOTAL = 2;
    const guilds = [guildOn(0, TOTAL, 1), guildOn(0, TOTAL, 2), guildOn(0, TOTAL, 3), guildOn(1, TOTAL, 4), guildOn(1, TOTAL, 5)];
    const gateway = await gatewayWith({ shards: TOTAL, guilds });
    const cluster = clusterOn(gateway, { guildReadyTimeout: 3_000 });
    const events: GuildsReadyEvent[] = [];
    const creates: { shardId: number; id: string }[] = [];
    cluster.guildsReady$.subscribe((event) => events.push(event));
    cluster.dispatch$.subscribe((event) => {
      if (event.t === 'GUILD_CREATE') creates.push({ shardId: event.shardId, id: (event.d as { id: string }).id });
    });
    await cluster.up();
    await eventually(() => events.length === TOTAL, 15_000, 'guilds ready on both shards');

    // Each guild went to the shard the formula names.
    for (const { shardId, id } of creates) expect(shardId).toBe(Number((BigInt(id) >> 22n) % BigInt(TOTAL)));
    expect(creates).toHaveLength(guilds.length);
    const byShard = new Map(events.map((e) => [e.shardId, e]));
    expect(byShard.get(0)).toEqual({ shardId: 0, available: 3, unavailable: [], timedOut: false });
    expect(byShard.get(1)).toEqual({ shardId: 1, available: 2, unavailable: [], timedOut: false });
    for (const info of cluster.info()) {
      expect(info.guildsReady).toBe(true);
      expect(info.guilds).toEqual({ available: info.id === 0 ? 3 : 2, unavailable: 0 });
    }

    // An outage shows up in info().
    const outage = guilds[3];
    gateway.dispatch(1, 'GUILD_DELETE', { id: outage, unavailable: true });
    await eventually(() => cluster.info()[1].guilds.unavailable === 1, 15_000, 'the outage to be counted');
    expect(cluster.info()[1].guilds.available).toBe(1);
    // A later event on shard 1 has been routed: the outage was handled completely before it.
    const marker = waitFor(cluster.dispatch$, (event) => event.shardId === 1 && event.t === 'TYPING_START');
    gateway.dispatch(1, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    await marker;
    expect(events).toHaveLength(TOTAL);
  });
});

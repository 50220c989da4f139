import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { Injectable } from '@nestjs/common';
import { Registry } from 'prom-client';
import {
  Cluster,
  GatewayEventRouter,
  GatewayModule,
  MalformedPayloadError,
  OnEvent,
  ShardService,
  type GatewayDispatch,
  type GuildsReadyEvent,
} from '../../lib/nest';
import { GatewayMetrics } from '../../lib/metrics';
import type { LocalGateway } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, eventually, startGateway } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, moduleOptions, rejectionOf } from '../module/nest-test-kit';
import { recordProcessCrashes } from '../helpers/process-crashes';

/** Two guilds of a one-shard bot. */
const GUILD_A = '81384788765712384';
const GUILD_B = '1023234123812343808';

/** What reaches the process-level error handlers: every test fails on it (see afterEach). */
const crashes = recordProcessCrashes();

function crashMessages(): string[] {
  return crashes.map(({ kind, error }) => `${kind}: ${(error as Error)?.message ?? String(error)}`);
}

@Injectable()
class MessageHandlers {
  readonly contents: string[] = [];

  @OnEvent('MESSAGE_CREATE')
  onMessage(message: { content: string }): void {
    // Throws on data of the wrong shape (null): the router must log it and go on.
    this.contents.push(message.content);
  }
}

const harness = new NestHarness();
let gateway: LocalGateway | undefined;
let cluster: Cluster | undefined;

void afterEach(async () => {
  await cluster?.down();
  await gateway?.close();
  cluster = gateway = undefined;
  await harness.cleanup();
  expect(crashMessages()).toEqual([]);
});

/** A ready one-shard bot on a gateway whose READY carries `guilds` as given. */
async function clusterWithReadyGuilds(guilds: unknown): Promise<{ errors: Error[]; events: GatewayDispatch[]; ready: GuildsReadyEvent[] }> {
  gateway = await startGateway({ guilds: [GUILD_A] });
  gateway.rewriteDispatches((t, d) => (t === 'READY' ? { ...(d as object), guilds } : d));
  cluster = new Cluster({
    token: gateway.token,
    intents: 1,
    apiUrl: gateway.apiUrl,
    identifyWindowMs: 100,
    guildReadyTimeout: 60_000,
    ...SHORT_SHARD_TIMINGS,
  });
  const errors: Error[] = [];
  const events: GatewayDispatch[] = [];
  const ready: GuildsReadyEvent[] = [];
  cluster.error$.subscribe((error) => errors.push(error));
  cluster.dispatch$.subscribe((event) => events.push(event));
  cluster.guildsReady$.subscribe((event) => ready.push(event));
  await cluster.up();
  return { errors, events, ready };
}

void describe('malformed payloads through the cluster', () => {
  for (const [label, guilds, problem] of [
    ['[null]', [null], '1 entry of d.guilds without a string id (first at index 0)'],
    ['[5]', [5], '1 entry of d.guilds without a string id (first at index 0)'],
    ['[{}]', [{}], '1 entry of d.guilds without a string id (first at index 0)'],
    ['5', 5, 'd.guilds is not an array'],
  ] as const) {
    void it(`READY with guilds ${label}: reported once, READY and the events after it still delivered`, { timeout: 20_000 }, async () => {
      const { errors, events, ready } = await clusterWithReadyGuilds(guilds);
      const sequence = events.find((e) => e.t === 'READY')?.s;
      expect(sequence).toBeDefined();
      const malformed = errors.filter((e) => e instanceof MalformedPayloadError);
      expect(malformed.map((e) => e.message)).toEqual([`Malformed READY (shard 0, sequence ${sequence}): ${problem}`]);
      expect(cluster!.malformedCounts()).toEqual([{ shardId: 0, event: 'READY', count: 1 }]);

      // Guild bookkeeping goes on with what it could read: the guild's GUILD_CREATE makes it available.
      await eventually(() => cluster!.info()[0].guilds.available === 1, 15_000, 'the GUILD_CREATE counted');
      expect(ready.every((r) => r.unavailable.every((id) => typeof id === 'string'))).toBe(true);

      gateway!.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
      await eventually(() => events.some((e) => e.t === 'MESSAGE_CREATE'), 15_000, 'the MESSAGE_CREATE after it');
    });
  }

  void it('GUILD_CREATE and GUILD_DELETE without an object or an id: reported, skipped', { timeout: 20_000 }, async () => {
    const { errors, events } = await clusterWithReadyGuilds([{ id: GUILD_A, unavailable: true }]);
    const bad = [
      gateway!.dispatch(0, 'GUILD_CREATE', null),
      gateway!.dispatch(0, 'GUILD_DELETE', { id: 5 }),
      gateway!.dispatch(0, 'GUILD_CREATE', []),
    ];
    gateway!.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => events.some((e) => e.t === 'MESSAGE_CREATE'), 15_000, 'the MESSAGE_CREATE after them');
    expect(errors.filter((e) => e instanceof MalformedPayloadError).map((e) => e.message)).toEqual([
      `Malformed GUILD_CREATE (shard 0, sequence ${bad[0]}): d is not an object`,
      `Malformed GUILD_DELETE (shard 0, sequence ${bad[1]}): d.id is not a string`,
      `Malformed GUILD_CREATE (shard 0, sequence ${bad[2]}): d is not an object`,
    ]);
    expect(cluster!.info()[0].guilds).toEqual({ available: 1, unavailable: 0 });
  });
});

void describe('malformed payloads through worker threads', () => {
  void it('data nested past what JSON.stringify can write: reported once and skipped, the worker lives on', { timeout: 30_000 }, async () => {
    gateway = await startGateway();
    cluster = new Cluster({
      token: gateway.token,
      intents: 1,
      apiUrl: gateway.apiUrl,
      identifyWindowMs: 100,
      ...SHORT_SHARD_TIMINGS,
      strategy: { type: 'workers', shardsPerWorker: 1 },
    });
    const errors: Error[] = [];
    const events: GatewayDispatch[] = [];
    const debug: string[] = [];
    cluster.error$.subscribe((error) => errors.push(error));
    cluster.dispatch$.subscribe((event) => events.push(event));
    cluster.debug$.subscribe(({ message }) => debug.push(message));
    await cluster.up();
    // JSON.parse reads it; JSON.stringify, which carries events out of the worker, overflows its stack on it.
    const deep = gateway.dispatchJson(0, 'MESSAGE_CREATE', '['.repeat(100_000) + ']'.repeat(100_000));
    const after = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => events.some((e) => e.s === after), 10_000, 'the event after it');
    expect(events.some((e) => e.s === deep)).toBe(false);
    expect(errors.filter((e) => e instanceof MalformedPayloadError).map((e) => e.message)).toEqual([
      `Malformed MESSAGE_CREATE (shard 0, sequence ${deep}): d cannot be passed to the main thread: Maximum call stack size exceeded`,
    ]);
    expect(cluster.malformedCounts()).toEqual([{ shardId: 0, event: 'MESSAGE_CREATE', count: 1 }]);
    expect(debug.filter((m) => /^worker 0 started/.test(m))).toHaveLength(1);
    expect(errors.some((e) => /exited/.test(e.message))).toBe(false);
  });
});

void describe('malformed payloads through the Nest layer', () => {
  async function app(gatewayOptions: Parameters<typeof startGateway>[0] = {}) {
    const local = await harness.gateway({ guilds: [GUILD_A, GUILD_B], membersPerGuild: 3, memberRequestCooldownMs: 0, ...gatewayOptions });
    const logger = new CapturingLogger();
    const nest = await harness.app(
      { imports: [GatewayModule.forRoot(moduleOptions(local, { memberRequestCooldownMs: 0 }))], providers: [MessageHandlers] },
      logger,
    );
    const metrics = new GatewayMetrics({ registry: new Registry() }).bind(nest.get(Cluster));
    return { local, logger, shards: nest.get(ShardService), handlers: nest.get(MessageHandlers), cluster: nest.get(Cluster), nest, metrics };
  }

  /** Warnings about malformed payloads. */
  function malformedWarnings(logger: CapturingLogger): string[] {
    return logger.of('warn').map((l) => l.message).filter((m) => m.startsWith('Malformed'));
  }

  void it('GUILD_MEMBERS_CHUNK with d: null fails both waiting member requests with a clear error, logged and counted once', { timeout: 20_000 }, async () => {
    const { local, logger, shards, handlers, metrics } = await app();
    local.rewriteDispatches((t, d) => (t === 'GUILD_MEMBERS_CHUNK' ? null : d));
    const [a, b] = await Promise.all([
      rejectionOf(shards.requestGuildMembers({ guildId: GUILD_A, timeoutMs: 10_000 })),
      rejectionOf(shards.requestGuildMembers({ guildId: GUILD_B, timeoutMs: 10_000 })),
    ]);
    for (const [error, guildId] of [[a, GUILD_A], [b, GUILD_B]] as const) {
      expect(error).toBeInstanceOf(MalformedPayloadError);
      expect((error as MalformedPayloadError).request).toBe(`the member request for guild ${guildId}`);
      expect((error as Error).message).toMatch(
        new RegExp(`^The member request for guild ${guildId} failed: its reply GUILD_MEMBERS_CHUNK \\(shard 0, sequence \\d+\\) was malformed: d is not an object$`),
      );
    }
    expect((a as MalformedPayloadError).sequence).toBe((b as MalformedPayloadError).sequence);
    expect(malformedWarnings(logger)).toEqual([`Malformed GUILD_MEMBERS_CHUNK (shard 0, sequence ${(a as MalformedPayloadError).sequence}): d is not an object`]);
    expect(logger.of('warn').filter((l) => l.message.startsWith('Malformed')).map((l) => l.context)).toEqual(['Shard 0']);
    expect(await metrics.metrics()).toContain('discord_gateway_malformed_payloads_total{shard="0",event="GUILD_MEMBERS_CHUNK"} 1');

    // Everything after it flows: a handler gets the next message, a request with a good answer succeeds.
    local.rewriteDispatches(null);
    local.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => handlers.contents.includes('after'), 15_000, 'the handler after the bad chunk');
    expect((await shards.requestGuildMembers({ guildId: GUILD_A, timeoutMs: 10_000 })).members).toHaveLength(3);
  });

  void it('GUILD_MEMBERS_CHUNK whose members is not an array, or whose chunk_index is out of range: the request fails', { timeout: 20_000 }, async () => {
    const { local, shards } = await app();
    for (const [mutate, problem] of [
      [(d: Record<string, unknown>) => ({ ...d, members: 'many' }), 'd.members is not an array'],
      [(d: Record<string, unknown>) => ({ ...d, members: { 0: {} } }), 'd.members is not an array'],
      [(d: Record<string, unknown>) => ({ ...d, chunk_index: 7 }), 'd.chunk_index is not an integer from 0 to chunk_count - 1'],
      [(d: Record<string, unknown>) => ({ ...d, not_found: 'x' }), 'd.not_found is not an array'],
    ] as const) {
      local.rewriteDispatches((t, d) => (t === 'GUILD_MEMBERS_CHUNK' ? mutate(d as Record<string, unknown>) : d));
      const error = await rejectionOf(shards.requestGuildMembers({ guildId: GUILD_A, query: 'u', limit: 10, timeoutMs: 10_000 }));
      expect(error).toBeInstanceOf(MalformedPayloadError);
      expect((error as MalformedPayloadError).problem).toBe(problem);
    }
  });

  void it('a GUILD_MEMBERS_CHUNK of 500,000 members is collected whole', { timeout: 30_000 }, async () => {
    const { local, shards } = await app();
    const members = Array.from({ length: 500_000 }, () => ({}));
    local.rewriteDispatches((t, d) => (t === 'GUILD_MEMBERS_CHUNK' ? { ...(d as object), members } : d));
    const result = await shards.requestGuildMembers({ guildId: GUILD_A, timeoutMs: 20_000 });
    expect(result.members).toHaveLength(500_000);
  });

  void it('RATE_LIMITED with d: null fails the member request that waits', { timeout: 20_000 }, async () => {
    // The gateway answers a second full-list request within its cooldown with RATE_LIMITED.
    const { local, logger, shards, handlers } = await app({ memberRequestCooldownMs: 60_000 });
    expect((await shards.requestGuildMembers({ guildId: GUILD_A, timeoutMs: 10_000 })).members).toHaveLength(3);
    local.rewriteDispatches((t, d) => (t === 'RATE_LIMITED' ? null : d));
    const error = await rejectionOf(shards.requestGuildMembers({ guildId: GUILD_A, timeoutMs: 10_000 }));
    expect(error).toBeInstanceOf(MalformedPayloadError);
    expect((error as MalformedPayloadError).event).toBe('RATE_LIMITED');
    expect((error as Error).message).toMatch(/^The member request for guild \d+ failed: its reply RATE_LIMITED \(shard 0, sequence \d+\) was malformed: d is not an object$/);
    expect(malformedWarnings(logger)).toHaveLength(1);
    local.rewriteDispatches(null);
    local.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => handlers.contents.includes('after'), 15_000, 'the handler after RATE_LIMITED');
  });

  void it('SOUNDBOARD_SOUNDS with d: null fails the soundboard request that waits', { timeout: 20_000 }, async () => {
    const { local, logger, shards, handlers, cluster: running } = await app();
    const replies: GatewayDispatch[] = [];
    running.dispatch$.subscribe((event) => {
      if (event.t === 'SOUNDBOARD_SOUNDS') replies.push(event);
    });
    local.rewriteDispatches((t, d) => (t === 'SOUNDBOARD_SOUNDS' ? null : d));
    const error = await rejectionOf(shards.requestSoundboardSounds([GUILD_A, GUILD_B], 10_000));
    // The first bad reply failed the request; the second one (a reply nobody waits for any more) is left alone.
    await eventually(() => replies.length === 2, 15_000, 'both replies');
    expect(error).toBeInstanceOf(MalformedPayloadError);
    expect((error as Error).message).toMatch(
      new RegExp(`^The soundboard request for guilds ${GUILD_A}, ${GUILD_B} failed: its reply SOUNDBOARD_SOUNDS \\(shard 0, sequence \\d+\\) was malformed: d is not an object$`),
    );
    expect(malformedWarnings(logger)).toHaveLength(1);
    expect(running.malformedCounts()).toEqual([{ shardId: 0, event: 'SOUNDBOARD_SOUNDS', count: 1 }]);
    local.rewriteDispatches(null);
    expect(await shards.requestSoundboardSounds([GUILD_A], 10_000)).toEqual({ [GUILD_A]: [] });
    local.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => handlers.contents.includes('after'), 15_000, 'the handler after SOUNDBOARD_SOUNDS');
  });

  void it('CHANNEL_INFO with d: null, or without a channel list, fails the channel info request that waits', { timeout: 20_000 }, async () => {
    const { local, logger, shards } = await app();
    for (const [mutate, problem] of [
      [() => null, 'd is not an object'],
      [(d: unknown) => ({ ...(d as object), channels: 'none' }), 'd.channels is not an array'],
    ] as const) {
      local.rewriteDispatches((t, d) => (t === 'CHANNEL_INFO' ? mutate(d) : d));
      const error = await rejectionOf(shards.requestChannelInfo(GUILD_A, { timeoutMs: 10_000 }));
      expect(error).toBeInstanceOf(MalformedPayloadError);
      expect((error as Error).message).toMatch(
        new RegExp(`^The channel info request for guild ${GUILD_A} failed: its reply CHANNEL_INFO \\(shard 0, sequence \\d+\\) was malformed: ${problem}$`),
      );
    }
    expect(malformedWarnings(logger)).toHaveLength(2);
    local.rewriteDispatches(null);
    expect((await shards.requestChannelInfo(GUILD_A, { timeoutMs: 10_000 })).guild_id).toBe(GUILD_A);
  });

  void it('a handler that throws on bad data, and a router observer that throws, end neither the routing nor the process', { timeout: 20_000 }, async () => {
    const { local, logger, handlers, nest } = await app();
    nest.get(GatewayEventRouter).observe({
      eventSettled: () => {
        throw new Error('the observer threw');
      },
    });
    local.dispatch(0, 'MESSAGE_CREATE', null);
    local.dispatch(0, 'MESSAGE_CREATE', { content: 'after' });
    await eventually(() => handlers.contents.includes('after'), 15_000, 'the handler after the throws');
    const errors = logger.of('error').map((l) => l.message);
    expect(errors.some((m) => m.startsWith('Handler MessageHandlers.onMessage failed on MESSAGE_CREATE'))).toBe(true);
    expect(errors.filter((m) => m === 'A router observer threw: the observer threw').length).toBeGreaterThanOrEqual(2);
  });
});

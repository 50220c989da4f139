import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { constants, deflateSync } from 'node:zlib';
import { Injectable } from '@nestjs/common';
import { Registry } from 'prom-client';
import { Cluster, GatewayModule, OnEvent, ShardService, ShardState, type GatewayDispatch, type Shard } from '../../lib/nest';
import { GatewayMetrics } from '../../lib/metrics';
import type { DispatchRewrite, LocalGateway, LocalGatewayConnection } from '../../lib/nest/testing';
import { SeededRandom } from '../../lib/core/testing/seeded-random';
import { MUTATION_KINDS, baseData, dispatchEventNames, hugeArray, mutate, type Mutation } from '../helpers/dispatch-fuzz';
import { SHORT_SHARD_TIMINGS, collectDispatches, createShard, eventually, startGateway } from '../helpers/gateway-test-kit';
import { CapturingLogger, NestHarness, moduleOptions } from '../module/nest-test-kit';
import { recordProcessCrashes } from '../helpers/process-crashes';

/**
 * Fuzzes the inbound path of a real Shard over the local gateway: random bytes, mutated and truncated frames,
 * truncated zlib, invalid UTF-8, wrong types, huge numbers and deeply nested JSON, on a compressed and on an
 * uncompressed connection. After every bad frame the gateway sends a probe dispatch: the shard must report the bad
 * frame (error$ or debug$), be ready again and deliver the probe exactly once.
 *
 * Then the layers above it: every dispatch event discord-api-types defines, with its data mutated (null, wrong
 * types, missing fields, huge arrays), through a bare Cluster and through a GatewayModule app whose handlers read
 * the data and whose member and soundboard requests are waiting for answers that arrive malformed.
 */

/** READY carries this sequence, so that a mutated dispatch (sequence 1) is always one the shard already has. */
const FIRST_SEQUENCE = 1_000_000;
const CASES_PER_MODE = 150;
const NESTING = 100_000;

/** What the shard is sent: text (compressed when the connection is), text bytes (maybe invalid UTF-8), or raw bytes. */
interface FuzzInput {
  category: string;
  kind: 'text' | 'text-bytes' | 'raw-bytes';
  data: string | Buffer;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isValidUtf8(bytes: Buffer): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function randomBytes(rng: SeededRandom, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = rng.int(0, 255);
  return bytes;
}

/** A well-formed dispatch the shard has already received (sequence 1). */
function validFrame(rng: SeededRandom): string {
  return JSON.stringify({
    op: 0,
    t: 'MESSAGE_CREATE',
    s: 1,
    d: { id: String(rng.int(1e9, 2e9)), channel_id: '42', content: `hello ${rng.hex(8)}`, mentions: [], tts: false, n: rng.int(0, 1e6) },
  });
}

const INVALID_UTF8: number[][] = [
  [0xff],
  [0xfe, 0xff],
  [0xc0, 0xaf], // overlong '/'
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xe2, 0x82], // truncated 3-byte sequence
  [0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
];

const WRONG_TYPES: unknown[] = [
  { op: '0', t: 'MESSAGE_CREATE', s: 1, d: {} },
  { op: null, d: {} },
  { op: [0], t: 'MESSAGE_CREATE', s: 1, d: {} },
  { op: { op: 0 }, d: null },
  { op: true },
  { op: 0, t: 42, s: FIRST_SEQUENCE + 10, d: {} },
  { op: 0, t: null, s: FIRST_SEQUENCE + 10, d: {} },
  { op: 0, t: ['MESSAGE_CREATE'], s: FIRST_SEQUENCE + 10, d: {} },
  { op: 0, t: 'MESSAGE_CREATE', s: String(FIRST_SEQUENCE + 10), d: {} },
  { op: 0, t: 'MESSAGE_CREATE', s: FIRST_SEQUENCE + 10.5, d: {} },
  { op: 0, t: 'MESSAGE_CREATE', s: null, d: {} },
  { op: 0, t: 'MESSAGE_CREATE', s: { s: 1 }, d: {} },
  { op: 0, t: 'MESSAGE_CREATE' },
  { op: 0, t: 'READY', s: 1, d: { session_id: 7, resume_gateway_url: ['x'] } },
  { op: 10, d: { heartbeat_interval: 'soon' } },
  { op: 10, d: null },
  { op: 9, d: 'yes' },
  [0, 'MESSAGE_CREATE', 1],
  'op',
  42,
  null,
];

const HUGE_NUMBERS: string[] = [
  '{"op":1e400}',
  '{"op":-1e400,"d":null}',
  '{"op":123456789012345678901234567890,"d":{}}',
  '{"op":0.000000000000000000001}',
  '{"op":0,"t":"MESSAGE_CREATE","s":1e400,"d":{}}',
  `{"op":0,"t":"MESSAGE_CREATE","s":${2 ** 53 + 2},"d":{}}`,
  '{"op":0,"t":"MESSAGE_CREATE","s":-9007199254740993,"d":{}}',
  `{"op":0,"t":"MESSAGE_CREATE","s":1,"d":{"n":1e400,"m":-1e400,"id":123456789012345678901234567890}}`,
  '{"op":10,"d":{"heartbeat_interval":1e400}}',
  '{"op":10,"d":{"heartbeat_interval":-1e400}}',
  '{"op":10,"d":{"heartbeat_interval":0}}',
  '{"op":11,"d":1e400}',
  `{"op":0,"t":"${'X'.repeat(5000)}","s":1,"d":{}}`,
];

function nestedJson(rng: SeededRandom): string {
  const variant = rng.int(0, 3);
  const arrays = '['.repeat(NESTING) + ']'.repeat(NESTING);
  const objects = '{"a":'.repeat(NESTING) + '1' + '}'.repeat(NESTING);
  switch (variant) {
    case 0:
      return `{"op":0,"t":"MESSAGE_CREATE","s":1,"d":${arrays}}`;
    case 1:
      return `{"op":0,"t":"MESSAGE_CREATE","s":1,"d":${objects}}`;
    case 2:
      // Nested, and never closed.
      return `{"op":0,"t":"MESSAGE_CREATE","s":1,"d":${'['.repeat(NESTING)}`;
    default:
      // The nesting comes before op: the whole payload must be parsed to find no numeric op.
      return arrays;
  }
}

function generate(rng: SeededRandom, index: number): FuzzInput {
  const base = validFrame(rng);
  switch (index % 8) {
    case 0:
      return { category: 'random bytes', kind: 'raw-bytes', data: randomBytes(rng, rng.int(1, 300)) };
    case 1: {
      const bytes = Buffer.from(base);
      const flips = rng.int(1, 3);
      for (let i = 0; i < flips; i++) bytes[rng.int(0, bytes.length - 1)] ^= 1 << rng.int(0, 7);
      return { category: 'bit flips', kind: 'text-bytes', data: bytes };
    }
    case 2:
      return { category: 'truncated frame', kind: 'text', data: base.slice(0, rng.int(1, base.length - 1)) };
    case 3: {
      const compressed = deflateSync(Buffer.from(base), { flush: constants.Z_SYNC_FLUSH });
      const cut = compressed.subarray(0, rng.int(1, compressed.length - 5));
      // Half of them keep the flush suffix, so the client inflates them at once.
      const data = rng.chance(0.5) ? Buffer.concat([cut, Buffer.from([0x00, 0x00, 0xff, 0xff])]) : cut;
      return { category: 'truncated zlib', kind: 'raw-bytes', data };
    }
    case 4: {
      const bad = Buffer.from(rng.pick(INVALID_UTF8));
      const [head, tail] = [base.slice(0, base.indexOf('hello') + 6), base.slice(base.indexOf('hello') + 6)];
      return { category: 'invalid UTF-8', kind: 'text-bytes', data: Buffer.concat([Buffer.from(head), bad, Buffer.from(tail)]) };
    }
    case 5:
      return { category: 'wrong types', kind: 'text', data: JSON.stringify(rng.pick(WRONG_TYPES)) };
    case 6:
      return { category: 'huge numbers', kind: 'text', data: rng.pick(HUGE_NUMBERS) };
    default:
      return { category: 'deep nesting', kind: 'text', data: nestedJson(rng) };
  }
}

/**
 * What the shard must do with an input, judged from the payload it will see: report it (`signal`), treat it as a
 * valid heartbeat request or ACK (`silent`), or report it and start a new session (op 9 that is not resumable).
 */
function expectation(input: FuzzInput, compressed: boolean, sequence: number): 'signal' | 'silent' | 'new-session' {
  if (input.kind === 'raw-bytes' && compressed) return 'signal';
  const bytes = Buffer.isBuffer(input.data) ? input.data : Buffer.from(input.data);
  if (input.kind === 'text-bytes' && !compressed && !isValidUtf8(bytes)) return 'signal';
  let payload: any;
  try {
    payload = JSON.parse(bytes.toString());
  } catch {
    return 'signal';
  }
  if (typeof payload !== 'object' || payload === null || typeof payload.op !== 'number') return 'signal';
  if (payload.op === 1 || payload.op === 11) return 'silent';
  if (payload.op === 9 && payload.d !== true) return 'new-session';
  if (payload.op === 0 && typeof payload.t === 'string' && Number.isSafeInteger(payload.s) && payload.s > sequence) {
    throw new Error(`the generator produced a dispatch the shard would accept: ${bytes.toString().slice(0, 80)}`);
  }
  return 'signal';
}

function send(connection: LocalGatewayConnection, input: FuzzInput): void {
  if (input.kind === 'raw-bytes') connection.sendBytes(input.data as Buffer);
  else connection.sendText(input.data);
}

/** The probe number a dispatch carries (sequences start again with each new session, so they cannot tell). */
function probeOf(event: GatewayDispatch): number | undefined {
  const d = event.d as { probe?: unknown } | null;
  return typeof d?.probe === 'number' ? d.probe : undefined;
}

/** Error$ messages and debug$ lines that report a bad or unexpected frame. */
const REPORTS = /ignored|dropped|not valid JSON|decompression failed|connection closed|socket error|reconnecting|HELLO|READY carried/;

void describe('Shard inbound fuzzing', () => {
  const crashes = recordProcessCrashes();
  let gateway: LocalGateway | undefined;
  let shard: Shard | undefined;

  afterEach(async () => {
    await shard?.close();
    await gateway?.close();
    shard = gateway = undefined;
  });

  for (const [mode, compressed, seed] of [
    ['zlib-stream', true, 0x5eed01],
    ['uncompressed', false, 0x5eed02],
  ] as const) {
    void it(`${mode}: ${CASES_PER_MODE} malformed frames: no crash, each one reported, the shard recovers and loses nothing`, { timeout: 60_000 }, async () => {
      gateway = await startGateway({ firstSequence: FIRST_SEQUENCE });
      shard = createShard(gateway, { compression: compressed ? 'zlib-stream' : false, random: () => 0.5 });
      const errors: string[] = [];
      const debug: string[] = [];
      shard.error$.subscribe((error) => errors.push(error.message));
      shard.debug$.subscribe((line) => debug.push(line));
      const seen = collectDispatches(shard);
      await shard.connect();
      const rng = new SeededRandom(seed);
      const probes: number[] = [];
      const categories = new Map<string, number>();
      let unreported = 0;

      for (let i = 0; i < CASES_PER_MODE; i++) {
        const input = generate(rng, i);
        const expected = expectation(input, compressed, shard.info().sequence ?? 0);
        categories.set(input.category, (categories.get(input.category) ?? 0) + 1);
        const marks = { errors: errors.length, debug: debug.length };
        const session = gateway.sessionOf(0);
        const connection = gateway.connectionOf(0);
        if (!connection) throw new Error(`case ${i}: no open connection`);
        send(connection, input);
        if (expected === 'new-session') {
          await eventually(() => gateway!.sessionOf(0) !== session && shard!.state === ShardState.Ready, 15_000, `case ${i}: a new session`);
        }
        // The probe reaches the shard on this connection, or is replayed by RESUME on the next one.
        gateway.dispatch(0, 'MESSAGE_CREATE', { probe: i });
        probes.push(i);
        await eventually(
          () => seen.events.some((e) => probeOf(e) === i) && shard!.state === ShardState.Ready,
          5_000,
          `case ${i} (${input.category}): the probe after it, on a ready shard`,
        );
        const reported =
          errors.length > marks.errors || debug.slice(marks.debug).some((line) => REPORTS.test(line));
        if (expected !== 'silent' && !reported) unreported++;
        if (expected !== 'silent') {
          const what = { case: i, category: input.category, payload: input.data.toString().slice(0, 120) };
          expect({ ...what, reported }).toEqual({ ...what, reported: true });
        }
      }

      // Recovery: ready, and a dispatch sent afterwards arrives.
      expect(shard.state).toBe(ShardState.Ready);
      gateway.dispatch(0, 'MESSAGE_CREATE', { probe: CASES_PER_MODE });
      await eventually(() => seen.events.some((e) => probeOf(e) === CASES_PER_MODE), 15_000, 'the dispatch after the fuzzing');

      // Every probe arrived exactly once, in order, across the reconnects the bad frames caused.
      const delivered = seen.events.map(probeOf).filter((n) => n !== undefined);
      expect(delivered).toEqual([...probes, CASES_PER_MODE]);

      expect(unreported).toBe(0);
      expect([...categories.keys()].sort()).toEqual(
        ['bit flips', 'deep nesting', 'huge numbers', 'invalid UTF-8', 'random bytes', 'truncated frame', 'truncated zlib', 'wrong types'],
      );
      // The bad frames did reach the error paths: reported errors and reconnects.
      expect(errors.some((m) => /not valid JSON|decompression failed/.test(m))).toBe(true);
      expect(gateway.connections.length).toBeGreaterThan(10);
      expect(crashes).toEqual([]);
    });
  }
});

// ---- every dispatch shape, mutated, through a Cluster and a GatewayModule app ------------------------------------

/** Guilds owned by shard 0 and shard 1 of a two-shard bot: `(id >> 22) % 2`. */
const GUILD_ON_SHARD = ['81384788765712384', '1023234123812343808'];
/** Length of the huge arrays put in place of fields: past what `push(...array)` can spread. */
const HUGE_ARRAY = 150_000;
const EVENT_NAMES: string[] = dispatchEventNames();

/**
 * Sends every dispatch event discord-api-types defines to the shards of `gateway`, each as several seeded
 * mutations (always `null d`, and three more kinds; a huge array for one event in eight). READY and RESUMED come
 * last (after `beforeHandshakes` settles), the way the gateway sends them: in a new session (after op 9) or a
 * resumed one (after op 7), mutated on the way but keeping their session fields (without them the shard would never
 * get a session). Returns how many were sent.
 */
async function fuzzEveryDispatch(
  gateway: LocalGateway,
  rng: SeededRandom,
  shardReady: (shardId: number) => boolean,
  rewrite: { handshake: DispatchRewrite | null },
  beforeHandshakes: () => Promise<unknown> = async () => undefined,
): Promise<number> {
  let sent = 0;
  const handshakes: string[] = EVENT_NAMES.filter((t) => t === 'READY' || t === 'RESUMED');
  const order = [...EVENT_NAMES.filter((t) => !handshakes.includes(t)), ...handshakes];
  for (const [index, t] of order.entries()) {
    if (t === handshakes[0]) await beforeHandshakes();
    const shardId = index % GUILD_ON_SHARD.length;
    const guildId = GUILD_ON_SHARD[shardId];
    const others = MUTATION_KINDS.filter((kind) => kind !== 'null d' && kind !== 'huge array');
    const kinds: Mutation['kind'][] = ['null d', ...Array.from({ length: 3 }, () => rng.pick(others))];
    if (index % 8 === 0) kinds.push('huge array');
    for (const kind of kinds) {
      if (t === 'READY' || t === 'RESUMED') {
        rewrite.handshake = (name, d, shard) => {
          if (name !== t || shard !== shardId) return d;
          rewrite.handshake = null;
          const mutated = mutate(rng, (d ?? {}) as Record<string, unknown>, kind, HUGE_ARRAY).d;
          if (t === 'RESUMED') return mutated;
          const session = d as { session_id: string; resume_gateway_url: string };
          const object = typeof mutated === 'object' && mutated !== null && !Array.isArray(mutated) ? mutated : {};
          return { ...object, session_id: session.session_id, resume_gateway_url: session.resume_gateway_url };
        };
        const ready = gateway.waitForReady(shardId, 15_000);
        if (t === 'READY') gateway.invalidateSession(shardId, false);
        else gateway.reconnect(shardId);
        await ready;
        await eventually(() => shardReady(shardId), 15_000, `shard ${shardId} ready after a mutated ${t}`);
      } else {
        gateway.dispatch(shardId, t, mutate(rng, baseData(t, guildId, rng.int(1, 1e6)), kind, HUGE_ARRAY).d);
      }
      sent++;
    }
  }
  return sent;
}

/** A reply the waiting request cannot use, whatever it was: seeded among shapes each reader refuses. */
function malformedReply(rng: SeededRandom, t: string, d: unknown): unknown {
  const data = { ...(d as Record<string, unknown>) };
  const choices: (() => unknown)[] = [() => null, () => rng.pick([5, 'text', true, [], [{}]])];
  if (t === 'GUILD_MEMBERS_CHUNK') {
    choices.push(
      () => ({ ...data, members: rng.pick([null, 'many', { 0: {} }, 7]) }),
      () => ({ ...data, chunk_index: rng.pick([-1, 1.5, 'first', null]) }),
      () => ({ ...data, chunk_count: 0 }),
      () => ({ ...data, nonce: 42 }),
      () => ({ ...data, members: hugeArray(rng, HUGE_ARRAY), chunk_index: 99 }),
    );
  } else if (t === 'RATE_LIMITED') {
    choices.push(() => ({ ...data, retry_after: rng.pick(['soon', -1, null]) }), () => ({ ...data, meta: null }));
  } else if (t === 'CHANNEL_INFO') {
    choices.push(() => ({ ...data, channels: rng.pick([null, 'none', {}]) }), () => ({ ...data, guild_id: 5 }));
  } else if (t === 'SOUNDBOARD_SOUNDS') {
    choices.push(() => ({ ...data, soundboard_sounds: rng.pick([null, 'none', {}]) }), () => ({ ...data, guild_id: 5 }));
  }
  return rng.pick(choices)();
}

@Injectable()
class FuzzHandlers {
  readonly probes: string[] = [];
  handled = 0;

  /** Reads into the data as a handler would: throws on most malformed shapes (the router logs it and goes on). */
  @OnEvent(...(EVENT_NAMES as [string, ...string[]]))
  onAny(data: { id?: string; guild_id?: string }): void {
    this.handled++;
    if (String(data.id ?? data.guild_id).length === 0) throw new Error('empty id');
  }

  @OnEvent('MESSAGE_CREATE')
  onMessage(message: { content?: unknown }): void {
    if (typeof message?.content === 'string' && message.content.startsWith('probe')) this.probes.push(message.content);
  }
}

void describe('every dispatch shape, mutated, through the cluster and the Nest layer', () => {
  const crashes = recordProcessCrashes();
  const harness = new NestHarness();
  let cluster: Cluster | undefined;

  afterEach(async () => {
    await cluster?.down();
    cluster = undefined;
    await harness.cleanup();
  });

  void it('GatewayModule app with handlers, member and soundboard requests in flight: survives, requests fail clearly, events flow', { timeout: 120_000 }, async () => {
    const gateway = await harness.gateway({ shards: 2, guilds: GUILD_ON_SHARD, membersPerGuild: 5, heartbeatInterval: 5_000 });
    const rewrite: { handshake: DispatchRewrite | null; replies: DispatchRewrite | null } = { handshake: null, replies: null };
    gateway.rewriteDispatches((t, d, shardId) => {
      const once = rewrite.handshake;
      const after = once ? once(t, d, shardId) : d;
      return rewrite.replies ? rewrite.replies(t, after, shardId) : after;
    });
    const logger = new CapturingLogger();
    const app = await harness.app(
      { imports: [GatewayModule.forRoot(moduleOptions(gateway, { memberRequestCooldownMs: 0 }))], providers: [FuzzHandlers] },
      logger,
    );
    const running = app.get(Cluster);
    const shards = app.get(ShardService);
    const handlers = app.get(FuzzHandlers);
    const metrics = new GatewayMetrics({ registry: new Registry() }).bind(running);
    const rng = new SeededRandom(0x5eed03);
    const replyRng = new SeededRandom(0x5eed05);

    // A first full list of guild 0 succeeds: a second one within the gateway's cooldown is answered RATE_LIMITED.
    expect((await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD[0], timeoutMs: 10_000 })).members).toHaveLength(5);
    const replies = ['GUILD_MEMBERS_CHUNK', 'RATE_LIMITED', 'SOUNDBOARD_SOUNDS', 'CHANNEL_INFO'];
    rewrite.replies = (t, d) => (replies.includes(t) ? malformedReply(replyRng, t, d) : d);
    const inFlight = [
      shards.requestGuildMembers({ guildId: GUILD_ON_SHARD[0], timeoutMs: 60_000 }),
      shards.requestGuildMembers({ guildId: GUILD_ON_SHARD[1], timeoutMs: 60_000 }),
      shards.requestGuildMembers({ guildId: GUILD_ON_SHARD[1], query: 'u', limit: 10, timeoutMs: 60_000 }),
      shards.requestSoundboardSounds(GUILD_ON_SHARD, 60_000),
      shards.requestSoundboardSounds([GUILD_ON_SHARD[1]], 60_000),
      shards.requestChannelInfo(GUILD_ON_SHARD[0], { timeoutMs: 60_000 }),
    ];
    const settled = Promise.allSettled(inFlight);
    // The requests are answered while the fuzz runs; a new session (the READY mutations) would drop their answers.
    const sent = await fuzzEveryDispatch(gateway, rng, (id) => shards.info(id)?.state === ShardState.Ready, rewrite, () => settled);
    const outcomes = await settled;
    rewrite.replies = null;

    // Every request in flight failed with the named error, not a timeout.
    for (const [i, outcome] of outcomes.entries()) {
      const reason = outcome.status === 'rejected' ? (outcome.reason as Error) : null;
      expect({ request: i, name: reason?.name, clear: /failed: its reply [A-Z_]+ \(shard \d, sequence \d+\) was malformed: / .test(reason?.message ?? '') }).toEqual({
        request: i,
        name: 'MalformedPayloadError',
        clear: true,
      });
    }
    // After the fuzz, well-formed events still reach handlers on both shards, and requests work again.
    gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'probe 0' });
    gateway.dispatch(1, 'MESSAGE_CREATE', { content: 'probe 1' });
    await eventually(() => handlers.probes.length === 2, 10_000, 'the probes after the fuzz');
    expect(handlers.probes.sort()).toEqual(['probe 0', 'probe 1']);
    expect((await shards.requestGuildMembers({ guildId: GUILD_ON_SHARD[1], query: '', limit: 3, timeoutMs: 10_000 })).members).toHaveLength(3);
    expect(await shards.requestSoundboardSounds(GUILD_ON_SHARD, 10_000)).toEqual({ [GUILD_ON_SHARD[0]]: [], [GUILD_ON_SHARD[1]]: [] });

    // Malformed payloads were counted, and each was logged once at WARN.
    const counts = running.malformedCounts();
    const total = counts.reduce((sum, c) => sum + c.count, 0);
    expect(total).toBeGreaterThan(0);
    // Only what the library reads is judged; the request replies and GUILD_CREATE's `null d` always are malformed.
    const consumed = ['READY', 'GUILD_CREATE', 'GUILD_DELETE', ...replies];
    for (const { event } of counts) expect(consumed).toContain(event);
    for (const event of ['GUILD_CREATE', 'GUILD_MEMBERS_CHUNK', 'SOUNDBOARD_SOUNDS']) expect(counts.map((c) => c.event)).toContain(event);
    expect(logger.of('warn').filter((l) => l.message.startsWith('Malformed ')).length).toBe(total);
    const text = await metrics.metrics();
    const exported = [...text.matchAll(/^discord_gateway_malformed_payloads_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(exported).toBe(total);
    expect(sent).toBeGreaterThan(EVENT_NAMES.length * 4);
    expect(handlers.handled).toBeGreaterThan(EVENT_NAMES.length);
    expect(crashes).toEqual([]);
  });

  void it('bare Cluster: survives, reports every malformed shape it reads once, and delivers what follows', { timeout: 120_000 }, async () => {
    const gateway = await harness.gateway({ shards: 2, guilds: GUILD_ON_SHARD, heartbeatInterval: 5_000 });
    const rewrite: { handshake: DispatchRewrite | null } = { handshake: null };
    gateway.rewriteDispatches((t, d, shardId) => (rewrite.handshake ? rewrite.handshake(t, d, shardId) : d));
    cluster = new Cluster({ token: gateway.token, intents: 1, apiUrl: gateway.apiUrl, identifyWindowMs: 100, ...SHORT_SHARD_TIMINGS, random: () => 0.5 });
    const running = cluster;
    const malformed: Error[] = [];
    const probes: string[] = [];
    let events = 0;
    running.error$.subscribe((error) => {
      if (error.name === 'MalformedPayloadError') malformed.push(error);
    });
    running.dispatch$.subscribe((event) => {
      events++;
      const content = (event.d as { content?: unknown } | null)?.content;
      if (event.t === 'MESSAGE_CREATE' && typeof content === 'string' && content.startsWith('probe')) probes.push(content);
    });
    await running.up();

    const sent = await fuzzEveryDispatch(gateway, new SeededRandom(0x5eed04), (id) => running.info().find((s) => s.id === id)?.state === ShardState.Ready, rewrite);
    gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'probe 0' });
    gateway.dispatch(1, 'MESSAGE_CREATE', { content: 'probe 1' });
    await eventually(() => probes.length === 2, 10_000, 'the probes after the fuzz');

    const total = running.malformedCounts().reduce((sum, c) => sum + c.count, 0);
    expect(total).toBeGreaterThan(0);
    expect(malformed).toHaveLength(total);
    // A bare cluster reads only the guild bookkeeping events.
    for (const { event } of running.malformedCounts()) expect(['READY', 'GUILD_CREATE', 'GUILD_DELETE']).toContain(event);
    // Guild bookkeeping holds only ids.
    for (const shard of running.info()) expect(shard.guilds.available + shard.guilds.unavailable).toBeLessThanOrEqual(GUILD_ON_SHARD.length + 50);
    expect(events).toBeGreaterThan(sent / 2);
    expect(crashes).toEqual([]);
  });
});

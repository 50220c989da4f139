import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GuildAvailability, type GuildsReadyEvent } from '../../lib/core/cluster/guild-availability';
import type { GatewayDispatch } from '../../lib/core/interfaces/gateway-dispatch.interface';
import { VirtualClock } from '../../lib/nest/testing';

const TIMEOUT_MS = 15_000;

let trackers: GuildAvailability[] = [];

/** A tracker of shard 3 whose timeout runs on a virtual clock (from 0). */
function tracker(timeoutMs = TIMEOUT_MS): { guilds: GuildAvailability; events: GuildsReadyEvent[]; clock: VirtualClock } {
  const events: GuildsReadyEvent[] = [];
  const clock = new VirtualClock();
  const guilds = new GuildAvailability(3, timeoutMs, (event) => events.push(event), undefined, clock);
  trackers.push(guilds);
  return { guilds, events, clock };
}

let seq = 0;
function event(t: string, d: unknown): GatewayDispatch {
  return { shardId: 3, t, s: ++seq, d };
}

function ready(...ids: string[]): GatewayDispatch {
  return event('READY', { session_id: 'x', resume_gateway_url: 'ws://127.0.0.1:1', guilds: ids.map((id) => ({ id, unavailable: true })) });
}

void afterEach(() => {
  for (const guilds of trackers) guilds.stop();
  trackers = [];
});

void describe('GuildAvailability', () => {
  void it('counts READY guilds as unavailable and fires once every one of them arrived', () => {
    const { guilds, events } = tracker();
    guilds.handle(ready('1', '2', '3'));
    expect(guilds.counts()).toEqual({ available: 0, unavailable: 3 });
    expect(guilds.guildsReady).toBe(false);
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_CREATE', { id: '2' }));
    expect(events).toHaveLength(0);
    guilds.handle(event('GUILD_CREATE', { id: '3' }));
    expect(events).toEqual([{ shardId: 3, available: 3, unavailable: [], timedOut: false }]);
    expect(guilds.guildsReady).toBe(true);
    expect(guilds.counts()).toEqual({ available: 3, unavailable: 0 });
  });

  void it('does not fire a second time when the timeout passes after all guilds arrived', () => {
    const { guilds, events, clock } = tracker();
    guilds.handle(ready('1'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    expect(clock.pending).toBe(0);
    clock.advance(TIMEOUT_MS * 2);
    expect(events).toHaveLength(1);
    expect(events[0].timedOut).toBe(false);
  });

  void it('fires at once for a READY without guilds', () => {
    const { guilds, events } = tracker();
    guilds.handle(ready());
    expect(events).toEqual([{ shardId: 3, available: 0, unavailable: [], timedOut: false }]);
  });

  void it('fires exactly guildReadyTimeout after READY with timedOut true and the ids still missing', () => {
    const { guilds, events, clock } = tracker();
    guilds.handle(ready('10', '20', '30'));
    guilds.handle(event('GUILD_CREATE', { id: '20' }));
    clock.advance(TIMEOUT_MS - 1);
    expect(events).toHaveLength(0);
    expect(guilds.guildsReady).toBe(false);
    clock.advance(1);
    expect(events).toHaveLength(1);
    expect(events[0].timedOut).toBe(true);
    expect(events[0].available).toBe(1);
    expect([...events[0].unavailable].sort()).toEqual(['10', '30']);
    expect(guilds.guildsReady).toBe(true);

    // A late guild is still counted, but "guilds ready" is not fired again.
    guilds.handle(event('GUILD_CREATE', { id: '10' }));
    expect(guilds.counts()).toEqual({ available: 2, unavailable: 1 });
    expect(events).toHaveLength(1);
  });

  void it('treats GUILD_DELETE with unavailable: true as an outage', () => {
    const { guilds } = tracker();
    guilds.handle(ready('1', '2'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_CREATE', { id: '2' }));
    expect(guilds.counts()).toEqual({ available: 2, unavailable: 0 });
    guilds.handle(event('GUILD_DELETE', { id: '1', unavailable: true }));
    expect(guilds.counts()).toEqual({ available: 1, unavailable: 1 });
    // The guild comes back.
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    expect(guilds.counts()).toEqual({ available: 2, unavailable: 0 });
  });

  void it('treats GUILD_DELETE without unavailable as leaving the guild', () => {
    const { guilds } = tracker();
    guilds.handle(ready('1', '2'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_CREATE', { id: '2' }));
    guilds.handle(event('GUILD_DELETE', { id: '2' }));
    expect(guilds.counts()).toEqual({ available: 1, unavailable: 0 });
    // Leaving a guild during an outage removes it from the unavailable ones too.
    guilds.handle(event('GUILD_DELETE', { id: '1', unavailable: true }));
    expect(guilds.counts()).toEqual({ available: 0, unavailable: 1 });
    guilds.handle(event('GUILD_DELETE', { id: '1', unavailable: false }));
    expect(guilds.counts()).toEqual({ available: 0, unavailable: 0 });
  });

  void it('stops waiting for a READY guild the bot left before it arrived', () => {
    const { guilds, events } = tracker();
    guilds.handle(ready('1', '2'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_DELETE', { id: '2' }));
    expect(events).toEqual([{ shardId: 3, available: 1, unavailable: [], timedOut: false }]);
  });

  void it('does not count an awaited guild in an outage as arrived', () => {
    const { guilds, events, clock } = tracker();
    guilds.handle(ready('1', '2'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_DELETE', { id: '2', unavailable: true }));
    clock.advance(TIMEOUT_MS - 1);
    expect(events).toHaveLength(0);
    clock.advance(1);
    expect(events).toEqual([{ shardId: 3, available: 1, unavailable: ['2'], timedOut: true }]);
  });

  void it('starts over on a new READY', () => {
    const { guilds, events } = tracker();
    guilds.handle(ready('1'));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    expect(events).toHaveLength(1);
    guilds.handle(ready('1', '5'));
    expect(guilds.guildsReady).toBe(false);
    expect(guilds.counts()).toEqual({ available: 0, unavailable: 2 });
    guilds.handle(event('GUILD_CREATE', { id: '5' }));
    guilds.handle(event('GUILD_CREATE', { id: '1' }));
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual({ shardId: 3, available: 2, unavailable: [], timedOut: false });
  });

  void it('times a new READY from its own arrival: the wait of the session before is dropped', () => {
    const { guilds, events, clock } = tracker();
    guilds.handle(ready('1'));
    clock.advance(10_000);
    guilds.handle(ready('2'));
    clock.advance(TIMEOUT_MS - 1);
    expect(events).toHaveLength(0);
    clock.advance(1);
    expect(events).toEqual([{ shardId: 3, available: 0, unavailable: ['2'], timedOut: true }]);
    expect(clock.now()).toBe(10_000 + TIMEOUT_MS);
  });

  void it('fires nothing once stopped', () => {
    const { guilds, events, clock } = tracker();
    guilds.handle(ready('1'));
    guilds.stop();
    expect(clock.pending).toBe(0);
    clock.advance(TIMEOUT_MS);
    expect(events).toHaveLength(0);
  });

  void it('ignores events of other kinds and malformed guild payloads', () => {
    const { guilds, events } = tracker();
    guilds.handle(ready('1'));
    guilds.handle(event('MESSAGE_CREATE', { id: '1' }));
    guilds.handle(event('GUILD_CREATE', null));
    guilds.handle(event('GUILD_CREATE', { id: 1 }));
    expect(events).toHaveLength(0);
    expect(guilds.counts()).toEqual({ available: 0, unavailable: 1 });
  });
});

import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { DispatchFilter, ShardState, type Shard } from '../../lib/nest';
import type { LocalGateway } from '../../lib/nest/testing';
import { collectDispatches, createShard, eventually, heartbeatRoundTrip, startGateway } from '../helpers/gateway-test-kit';

void describe('Shard with a dispatch filter', () => {
  let gateway: LocalGateway | undefined;
  let shard: Shard | undefined;

  afterEach(async () => {
    await shard?.close();
    await gateway?.close();
    shard = gateway = undefined;
  });

  void it('emits only wanted events, and still tracks every sequence number', async () => {
    gateway = await startGateway();
    shard = createShard(gateway, { dispatchFilter: new DispatchFilter(['MESSAGE_CREATE']) });
    const seen = collectDispatches(shard);
    await shard.connect();
    gateway.dispatch(0, 'TYPING_START', { channel_id: '1', user_id: '2', timestamp: 1 });
    const wanted = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'kept' });
    const last = gateway.dispatch(0, 'PRESENCE_UPDATE', { user: { id: '3' }, status: 'online' });
    await eventually(() => shard!.info().sequence === last, 15_000, 'the last sequence');
    expect(seen.events.map((e) => e.t)).toEqual(['READY', 'MESSAGE_CREATE']);
    expect(seen.events[1].s).toBe(wanted);
    // The heartbeat carries the sequence of the skipped event.
    const beat = await gateway.waitForFrame((f) => f.op === 1, 15_000);
    expect(beat.d).toBe(last);
  });

  void it('never parses the data of an unwanted event', async () => {
    gateway = await startGateway();
    shard = createShard(gateway, { dispatchFilter: new DispatchFilter(['MESSAGE_CREATE']) });
    const errors: Error[] = [];
    shard.error$.subscribe((e) => errors.push(e));
    await shard.connect();
    const connections = gateway.connections.length;
    // Valid envelope, broken data: decoding it would be a protocol error and a reconnect.
    gateway.connectionOf(0)!.sendText('{"op":0,"t":"TYPING_START","s":2,"d":{"broken":');
    await eventually(() => shard!.info().sequence === 2, 15_000, 'sequence 2');
    // The shard read a frame sent after it: a decode error would have been reported and closed the connection.
    await heartbeatRoundTrip(gateway, 0);
    expect(errors).toEqual([]);
    expect(shard.state).toBe(ShardState.Ready);
    expect(gateway.connections.length).toBe(connections);
  });

  void it('decodes events added to the filter while running, and replays stay exact', async () => {
    gateway = await startGateway();
    const filter = new DispatchFilter([]);
    shard = createShard(gateway, { dispatchFilter: filter });
    const seen = collectDispatches(shard);
    await shard.connect();
    const before = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'before' });
    await eventually(() => shard!.info().sequence === before, 15_000, 'the skipped event');
    filter.add('MESSAGE_CREATE');
    gateway.dropShard(0);
    const missed = gateway.dispatch(0, 'MESSAGE_CREATE', { content: 'replayed' });
    await gateway.waitForReady(0);
    await eventually(() => seen.events.some((e) => e.t === 'RESUMED'), 15_000, 'RESUMED');
    const messages = seen.events.filter((e) => e.t === 'MESSAGE_CREATE');
    // The one sent before the filter changed was skipped; the replayed one arrives once.
    expect(messages.map((e) => e.s)).toEqual([missed]);
    expect((messages[0].d as { content: string }).content).toBe('replayed');
  });
});

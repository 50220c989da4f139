import { afterEach } from 'node:test';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { filter, firstValueFrom, timeout, type Observable } from 'rxjs';
import { Shard, ShardState, type GatewayDispatch, type ShardOptions } from '../../lib/nest';
import {
  LocalGateway,
  SHORT_SHARD_TIMINGS,
  type LocalGatewayConnection,
  type LocalGatewayOptions,
  type RecordedFrame,
} from '../../lib/nest/testing';

/**
 * Heartbeat interval of the local gateways of tests that are not about heartbeats, ms: long enough that a machine
 * whose cores are busy still acknowledges every beat in time (no zombie reconnect in the middle of a test), and
 * within the 6 s command window of {@link SHORT_SHARD_TIMINGS}.
 */
export const TEST_HEARTBEAT_MS = 5_000;

/** Starts a local gateway with short timings and a {@link TEST_HEARTBEAT_MS} heartbeat. */
export function startGateway(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
  return LocalGateway.start({ heartbeatInterval: TEST_HEARTBEAT_MS, commandWindowMs: 6_000, ...options });
}

export { SHORT_SHARD_TIMINGS };

/** The gateway and shard of one test; see {@link useGatewayAndShard}. */
export interface GatewayAndShard {
  gateway?: LocalGateway;
  shard?: Shard;
}

/**
 * Holds one test's gateway and shard and closes both after each test of the calling `describe` block (shard
 * first). Tests assign `fixture.gateway` and `fixture.shard`.
 */
export function useGatewayAndShard(): GatewayAndShard {
  const fixture: GatewayAndShard = {};
  afterEach(async () => {
    await fixture.shard?.close();
    await fixture.gateway?.close();
    fixture.shard = fixture.gateway = undefined;
  });
  return fixture;
}

/** A shard pointed at `gateway` with {@link SHORT_SHARD_TIMINGS}. */
export function createShard(gateway: LocalGateway, options: Partial<ShardOptions> = {}): Shard {
  return new Shard({
    id: 0,
    total: 1,
    token: gateway.token,
    intents: 513,
    gatewayUrl: gateway.url,
    ...SHORT_SHARD_TIMINGS,
    ...options,
  });
}

/** First value of `source` that matches, or a rejection after `ms`. */
export function waitFor<T>(source: Observable<T>, predicate: (value: T) => boolean, ms = 15_000): Promise<T> {
  return firstValueFrom(source.pipe(filter(predicate), timeout({ first: ms })));
}

/** Resolves when the shard reaches `state`. */
export function waitForState(shard: Shard, state: ShardState, ms = 15_000): Promise<ShardState> {
  return waitFor(shard.state$, (s) => s === state, ms);
}

/** Resolves with the shard's next dispatch named `t`. */
export function nextDispatch(shard: Shard, t: string, ms = 15_000): Promise<GatewayDispatch> {
  return waitFor(shard.dispatch$, (e) => e.t === t, ms);
}

/** Collects every dispatch of a shard into an array until `stop()` is called. */
export function collectDispatches(shard: Shard): { events: GatewayDispatch[]; stop: () => void } {
  const events: GatewayDispatch[] = [];
  const sub = shard.dispatch$.subscribe((e) => events.push(e));
  return { events, stop: () => sub.unsubscribe() };
}

/**
 * A marker round trip on a shard's open connection: the gateway asks for a heartbeat (op 1) and this resolves with
 * the heartbeat the shard sends back. Frames go in order on one connection, so once it resolves the shard has read
 * everything the gateway sent before, and every frame the shard sent before has been recorded.
 */
export function heartbeatRoundTrip(
  gateway: LocalGateway,
  target: number | LocalGatewayConnection,
  ms = 15_000,
): Promise<RecordedFrame> {
  const connection = typeof target === 'number' ? gateway.connectionOf(target) : target;
  if (!connection?.open) throw new Error(`no open connection for the heartbeat round trip`);
  const beat = gateway.waitForFrame((f) => f.op === GatewayOpcodes.Heartbeat && f.connectionId === connection.id, ms);
  connection.send({ op: GatewayOpcodes.Heartbeat, d: null });
  return beat;
}

/** Polls `check` until it returns true, or rejects after `ms`. */
export function eventually(check: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  return eventuallyAsync(async () => check(), ms, what);
}

/**
 * Polls an async `check` (state outside this process: Redis, a sentinel) until it resolves true, or rejects after
 * `ms`.
 */
export async function eventuallyAsync(check: () => Promise<boolean>, ms = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

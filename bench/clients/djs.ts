import { CompressionMethod, WebSocketManager, WebSocketShardEvents, type IIdentifyThrottler } from '@discordjs/ws';
import type { GatewayDispatchPayload } from 'discord-api-types/v10';
import { loadConfig, Meter } from './harness';
import { WindowedIdentifyThrottler } from './windowed-identify-throttler';

/**
 * `djs-zlib-sync` / `djs-node-zlib`: a @discordjs/ws `WebSocketManager` pointed at the load server, with
 * `CompressionMethod.ZlibSync` or `ZlibNative` and a dispatch listener that reads one field of each payload.
 *
 * The manager reads `GET /v10/gateway/bot` through its `rest` option; a minimal object with `get` over `fetch`
 * stands in for @discordjs/rest. Its default identify throttler waits 5 s per `max_concurrency` bucket, as Discord
 * requires; the load server has no such limit, so a throttler that never waits is used (ours uses a 100 ms window).
 * When the scenario sets an identify window (`startup`, where the load server checks the limit), a
 * {@link WindowedIdentifyThrottler} with that window and the library queue's margin is used instead.
 */

const config = loadConfig();
const meter = new Meter(config);

const rest = {
  async get(route: string): Promise<unknown> {
    const response = await fetch(`${config.apiUrl}/v10${route}`, { headers: { Authorization: `Bot ${config.token}` } });
    if (!response.ok) throw new Error(`GET ${route} answered ${response.status}`);
    return response.json();
  },
};
const noWait: IIdentifyThrottler = { waitForIdentify: async () => undefined };

const manager = new WebSocketManager({
  token: config.token,
  intents: 1 | 512 | 32768,
  rest: rest as never,
  compression: config.client === 'djs-node-zlib' ? CompressionMethod.ZlibNative : CompressionMethod.ZlibSync,
  buildIdentifyThrottler: async (manager) => {
    if (config.identifyWindowMs === undefined) return noWait;
    const info = await manager.fetchGatewayInformation();
    // The margin of the library's InMemoryIdentifyQueue: 5 % of the window, from 50 to 250 ms.
    const marginMs = Math.min(250, Math.max(50, Math.ceil(config.identifyWindowMs * 0.05)));
    return new WindowedIdentifyThrottler(info.session_start_limit.max_concurrency, config.identifyWindowMs, marginMs);
  },
});

let touched = 0;
manager.on(WebSocketShardEvents.Ready, (_data, shardId) => meter.shardReady(shardId));
manager.on(WebSocketShardEvents.Dispatch, (payload: GatewayDispatchPayload, shardId: number) => {
  touched += payload.t.length;
  if (payload.s === meter.lastSequence(shardId)) meter.shardDone(shardId);
});
manager.on(WebSocketShardEvents.Error, (error: Error, shardId: number) => {
  process.stderr.write(`${config.client} shard ${shardId}: ${error.message} (${touched})\n`);
});

meter.begin();
manager.connect().catch((error: Error) => {
  process.stderr.write(`${config.client}: ${error.stack ?? error.message}\n`);
  process.exit(1);
});

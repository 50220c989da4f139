import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { Cluster, ClusterService, GatewayModule, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import type { LocalGateway } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
let server: RunningRedisServer;

/** Apps that share the shards of a 2-shard bot through Redis, each running its shards in worker threads. */
function appWith(gateway: LocalGateway, memberId: string) {
  const options: Partial<GatewayModuleOptions> = {
    redis: { url: server.url },
    keyPrefix: `ndg-test:ownership-workers:${process.pid}`,
    memberId,
    shards: { total: 2, ownership: 'redis' },
    strategy: { type: 'workers' },
    leaseTtlMs: 3_000,
    sessionSaveIntervalMs: 100,
  };
  return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))] }, new CapturingLogger());
}

void describe('Shard ownership with worker-thread shards', () => {
  before(async () => {
    server = await startRedisServer();
  });

  afterEach(() => harness.cleanup());

  after(async () => {
    await server.stop();
  });

  void it('two apps split the shards, run them in workers, and hand them over with RESUME', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const a = await appWith(gateway, 'a');
    const ready = (app: typeof a) => app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).map((s) => s.id);
    await eventually(() => ready(a).length === 2, 30_000, 'a runs both shards');
    expect(a.get(Cluster).workerPool?.workers.length).toBe(2);

    const b = await appWith(gateway, 'b');
    await eventually(() => ready(a).length === 1 && ready(b).length === 1, 30_000, 'one shard each');
    const moved = ready(b)[0];
    expect(b.get(Cluster).workerPool?.workers.length).toBe(1);
    // B resumed the session A saved while it held the lease: no new IDENTIFY.
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(2);
    expect(gateway.framesOf(GatewayOpcodes.Resume).map((f) => f.shardId)).toEqual([moved]);

    await harness.closeApp(a);
    await eventually(() => ready(b).length === 2, 30_000, 'b runs both shards');
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(2);
    expect(gateway.framesOf(GatewayOpcodes.Resume).map((f) => f.shardId).sort()).toEqual([0, 1]);
    expect(gateway.identifyViolations).toBe(0);
  });
});

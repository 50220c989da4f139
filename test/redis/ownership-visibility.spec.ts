import { describe, it, before, after, afterEach } from 'node:test';
import { expect } from 'expect';
import type { INestApplication } from '@nestjs/common';
import { Registry } from 'prom-client';
import { ClusterService, GatewayModule, type GatewayModuleOptions } from '../../lib/nest';
import { Cluster } from '../../lib/core';
import { GatewayMetrics } from '../../lib/metrics';
import type { LocalGateway } from '../../lib/nest/testing';
import { eventually } from '../helpers/gateway-test-kit';
import { OwnershipRecorder } from '../helpers/ownership-recorder';
import { startRedisServer, type RunningRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
let server: RunningRedisServer;

function appWith(gateway: LocalGateway, memberId: string): Promise<INestApplication> {
  const options: Partial<GatewayModuleOptions> = {
    redis: { url: server.url },
    keyPrefix: `ndg-test:visibility:${process.pid}`,
    memberId,
    shards: { total: 2, ownership: 'redis' },
    leaseTtlMs: 900,
  };
  return harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway, options))], providers: [OwnershipRecorder] }, new CapturingLogger());
}

void describe('Shard ownership seen from ClusterService, the core and the metrics', () => {
  before(async () => {
    server = await startRedisServer();
  });
  afterEach(() => harness.cleanup());
  after(() => server.stop());

  void it('reports owned shards and claim / release events, and counts them in the metrics', async () => {
    const gateway = await harness.gateway({ shards: 2 });
    const a = await appWith(gateway, 'a');
    const service = a.get(ClusterService);
    await eventually(() => service.ownedShards().length === 2, 8_000, 'A owning both shards');
    expect(service.ownedShards()).toEqual([0, 1]);
    const recorded = a.get(OwnershipRecorder).events;
    expect(recorded.filter((e) => e.type === 'claimed')).toEqual([
      { type: 'claimed', shardId: 0 },
      { type: 'claimed', shardId: 1 },
    ]);
    expect(recorded).toContainEqual({ type: 'members', members: ['a'] });
    // The core has the same view.
    expect(a.get(Cluster).ownedShards).toEqual([0, 1]);

    const metrics = new GatewayMetrics({ registry: new Registry() }).bind(a.get(Cluster));
    try {
      // B joins: A hands one shard over.
      const b = await appWith(gateway, 'b');
      await eventually(() => service.ownedShards().length === 1 && b.get(ClusterService).ownedShards().length === 1, 8_000, 'one shard each');
      const given = recorded.find((e) => e.type === 'released') as { shardId: number } | undefined;
      expect(given).toBeDefined();
      expect(service.ownedShards()).toEqual([1 - given!.shardId]);
      expect(b.get(ClusterService).ownedShards()).toEqual([given!.shardId]);
      expect(b.get(OwnershipRecorder).events).toContainEqual({ type: 'claimed', shardId: given!.shardId });

      const text = await metrics.metrics();
      expect(text).toMatch(/^discord_gateway_owned_shards 1$/m);
      expect(text).toMatch(/^discord_gateway_ownership_events_total\{type="released"\} 1$/m);
    } finally {
      metrics.remove();
    }
  });
});

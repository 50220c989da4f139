import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { GatewayModule, type GatewayModuleOptions } from '../../lib/nest';
import { GatewayOptionsError } from '../../lib/core';
import type { LocalGateway } from '../../lib/nest/testing';
import { moduleOptions, NestHarness, thrownBy } from './nest-test-kit';

const harness = new NestHarness();

/** True once any file of the ioredis package has been loaded into this process. */
function ioredisLoaded(): boolean {
  return Object.keys(require.cache).some((path) => /[\\/]node_modules[\\/]ioredis[\\/]/.test(path));
}

void describe('GatewayModule: Redis options', () => {
  afterEach(() => harness.cleanup());

  // Runs first: nothing before it in this process has asked for Redis.
  void it('without redis, an app starts and stops without loading ioredis', async () => {
    const gateway = await harness.gateway();
    const app = await harness.app({ imports: [GatewayModule.forRoot(moduleOptions(gateway))] });
    await harness.closeApp(app);
    expect(ioredisLoaded()).toBe(false);
  });

  const ownership = { shards: { total: 2, ownership: 'redis' as const } };
  const url = { url: 'redis://127.0.0.1:1' };
  const cases: { name: string; extra: Partial<GatewayModuleOptions>; option: string }[] = [
    { name: 'ownership without redis', extra: ownership, option: 'redis' },
    { name: "redis: 'localhost'", extra: { redis: 'localhost' as never }, option: 'redis' },
    { name: 'redis.url that is not redis://', extra: { redis: { url: 'http://127.0.0.1:6379' } }, option: 'redis.url' },
    { name: 'redis.client that is not a client', extra: { redis: { client: {} as never } }, option: 'redis.client' },
    { name: 'redis with both url and nodes', extra: { redis: { ...url, nodes: ['127.0.0.1:7000'] } as never }, option: 'redis' },
    { name: 'redis: {}', extra: { redis: {} as never }, option: 'redis' },
    { name: 'redis.nodes: []', extra: { redis: { nodes: [] } }, option: 'redis.nodes' },
    { name: "redis.nodes: ['127.0.0.1']", extra: { redis: { nodes: ['127.0.0.1:7000', '127.0.0.1'] } }, option: 'redis.nodes[1]' },
    { name: 'redis.nodes with port 0', extra: { redis: { nodes: [{ host: '127.0.0.1', port: 0 }] } }, option: 'redis.nodes[0]' },
    { name: 'redis.clusterOptions: 5', extra: { redis: { nodes: ['127.0.0.1:7000'], clusterOptions: 5 as never } }, option: 'redis.clusterOptions' },
    { name: 'redis.sentinels: {}', extra: { redis: { sentinels: {} as never, name: 'main' } }, option: 'redis.sentinels' },
    {
      name: "redis.sentinels: ['127.0.0.1:26379']",
      extra: { redis: { sentinels: ['127.0.0.1:26379'] as never, name: 'main' } },
      option: 'redis.sentinels[0]',
    },
    { name: 'redis.sentinels without name', extra: { redis: { sentinels: [{ host: '127.0.0.1', port: 26_379 }] } as never }, option: 'redis.name' },
    { name: "keyPrefix: 'bot{'", extra: { redis: url, keyPrefix: 'bot{' }, option: 'keyPrefix' },
    { name: "keyPrefix: '{}bot'", extra: { redis: url, keyPrefix: '{}bot' }, option: 'keyPrefix' },
    { name: 'keyPrefix without redis', extra: { keyPrefix: 'bot' }, option: 'keyPrefix' },
    { name: "keyPrefix: ''", extra: { redis: url, keyPrefix: '' }, option: 'keyPrefix' },
    { name: 'leaseTtlMs: 100', extra: { ...ownership, redis: url, leaseTtlMs: 100 }, option: 'leaseTtlMs' },
    { name: 'leaseTtlMs without ownership', extra: { redis: url, leaseTtlMs: 5_000 }, option: 'leaseTtlMs' },
    { name: 'commandTimeoutMs: 0', extra: { ...ownership, redis: url, commandTimeoutMs: 0 }, option: 'commandTimeoutMs' },
    { name: "memberId: 'a|b'", extra: { ...ownership, redis: url, memberId: 'a|b' }, option: 'memberId' },
    { name: 'exactlyOnce without redis', extra: { exactlyOnce: true }, option: 'exactlyOnce' },
    { name: "exactlyOnce: 'yes'", extra: { redis: url, exactlyOnce: 'yes' as never }, option: 'exactlyOnce' },
    { name: 'exactlyOnce.ttlMs: 10', extra: { redis: url, exactlyOnce: { ttlMs: 10 } }, option: 'exactlyOnce.ttlMs' },
    { name: 'sequenceSaveIntervalMs: -1', extra: { redis: url, sequenceSaveIntervalMs: -1 }, option: 'sequenceSaveIntervalMs' },
    { name: 'sequenceSaveIntervalMs: 2.5', extra: { sequenceSaveIntervalMs: 2.5 }, option: 'sequenceSaveIntervalMs' },
    { name: "shards.ownership: 'etcd'", extra: { shards: { total: 2, ownership: 'etcd' as never }, redis: url }, option: 'shards.ownership' },
  ];

  for (const { name, extra, option } of cases) {
    void it(`forRoot throws a GatewayOptionsError naming ${option} on ${name}, to its caller, opening no connection`, async () => {
      const gateway: LocalGateway = await harness.gateway();
      const error = thrownBy(() => GatewayModule.forRoot(moduleOptions(gateway, extra)));
      expect(error).toBeInstanceOf(GatewayOptionsError);
      expect((error as GatewayOptionsError).option).toBe(option);
      expect((error as Error).message).toContain(`"${option}"`);
      expect(gateway.connections).toHaveLength(0);
    });
  }
});

import { describe, it, afterEach } from 'node:test';
import { expect } from 'expect';
import { ClusterService, GatewayModule } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { eventually } from '../helpers/gateway-test-kit';
import { startRedisServer } from '../helpers/redis-server';
import { CapturingLogger, moduleOptions, NestHarness } from '../module/nest-test-kit';

const harness = new NestHarness();
const LEASE_TTL_MS = 1_500;

void describe('Shutdown with Redis unreachable', () => {
  afterEach(() => harness.cleanup());

  void it('finishes within leaseTtlMs + 2 s and says in a WARN line which sessions and leases it could not save', async () => {
    const server = await startRedisServer();
    try {
      const gateway = await harness.gateway({ shards: 2 });
      const logger = new CapturingLogger();
      const app = await harness.app(
        {
          imports: [
            GatewayModule.forRoot(
              moduleOptions(gateway, {
                redis: { url: server.url },
                keyPrefix: `ndg-test:shutdown:${process.pid}`,
                memberId: 'only',
                shards: { total: 2, ownership: 'redis' },
                leaseTtlMs: LEASE_TTL_MS,
              }),
            ),
          ],
        },
        logger,
      );
      const cluster = app.get(ClusterService);
      await eventually(() => cluster.info().filter((s) => s.state === ShardState.Ready).length === 2, 8_000, 'both shards ready');

      await server.stop();
      const startedAt = performance.now();
      await harness.closeApp(app);
      const tookMs = performance.now() - startedAt;

      expect(tookMs).toBeLessThan(LEASE_TTL_MS + 2_000);
      const warnings = logger.of('warn').map((line) => line.message);
      expect(warnings).toContainEqual(expect.stringMatching(/^Redis did not answer during shutdown; not saved: the sessions of shards 0, 1 .*; the release of the leases of shards 0, 1 \(they expire within 1500 ms\)$/));
    } finally {
      await server.stop();
    }
  });
});

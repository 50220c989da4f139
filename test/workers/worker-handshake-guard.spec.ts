import { afterEach, describe, it } from 'node:test';
import { expect } from 'expect';
import { GatewayOpcodes } from 'discord-api-types/v10';
import { ShardState, type HandshakeKind } from '../../lib/core';
import { ClusterHarness } from '../helpers/cluster-test-kit';
import { waitFor } from '../helpers/gateway-test-kit';

const harness = new ClusterHarness({ heartbeatInterval: 30_000 });

void afterEach(() => harness.closeAll());

void describe('Handshake guard of worker-thread shards', () => {
  void it('is asked on the main thread before each IDENTIFY and RESUME, and a refusal stops the shard', async () => {
    const gateway = await harness.gatewayWith({ shards: 1 });
    const asked: HandshakeKind[] = [];
    const handshakeGuard = (kind: HandshakeKind) => {
      asked.push(kind);
      return Promise.resolve(kind === 'identify');
    };
    const cluster = harness.clusterOn(gateway, { strategy: { type: 'workers' }, handshakeGuard });
    await cluster.up();
    const shard = cluster.shards.get(0)!;
    const sessionId = gateway.sessionOf(0);

    const resuming = waitFor(shard.state$, (state) => state === ShardState.Resuming, 10_000);
    gateway.reconnect(0);
    await resuming;
    await waitFor(shard.state$, (state) => state === ShardState.Disconnected, 10_000);

    expect(asked).toEqual(['identify', 'resume']);
    expect(gateway.framesOf(GatewayOpcodes.Identify)).toHaveLength(1);
    expect(gateway.framesOf(GatewayOpcodes.Resume)).toHaveLength(0);
    expect((await shard.close({ resumable: true }))?.sessionId).toBe(sessionId);
  });
});

import { GatewayIntentBits } from 'discord-api-types/v10';
import { Cluster, type ClusterOptions } from '../../lib/nest';
import type { LocalGateway, LocalGatewayOptions } from '../../lib/nest/testing';
import { SHORT_SHARD_TIMINGS, startGateway } from './gateway-test-kit';

/** Intents the cluster tests identify with. */
export const CLUSTER_TEST_INTENTS = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages;

/** Shard options of the cluster tests: short timings and a fixed jitter. */
export const SHORT_CLUSTER_OPTIONS: Partial<ClusterOptions> = { ...SHORT_SHARD_TIMINGS, random: () => 0.5 };

/** Rejection of a promise that must reject. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

/**
 * Starts local gateways and clusters for one test file and closes them all in `closeAll()` (call it in `afterEach`).
 */
export class ClusterHarness {
  private gateways: LocalGateway[] = [];
  private clusters: Cluster[] = [];

  constructor(
    private readonly gatewayDefaults: LocalGatewayOptions = {},
    private readonly clusterDefaults: Partial<ClusterOptions> = {},
  ) {}

  /** A local gateway with the file's defaults. */
  async gatewayWith(options: LocalGatewayOptions = {}): Promise<LocalGateway> {
    const gateway = await startGateway({ ...this.gatewayDefaults, ...options });
    this.gateways.push(gateway);
    return gateway;
  }

  /** A cluster on `gateway` that learns its shards from the gateway's `GET /gateway/bot`. */
  clusterOn(gateway: LocalGateway, options: Partial<ClusterOptions> = {}): Cluster {
    return this.track(
      new Cluster({
        token: gateway.token,
        intents: CLUSTER_TEST_INTENTS,
        apiUrl: gateway.apiUrl,
        identifyWindowMs: 100,
        ...this.clusterDefaults,
        ...SHORT_CLUSTER_OPTIONS,
        ...options,
      }),
    );
  }

  /** Closes `cluster` with the others at the end of the test. */
  track(cluster: Cluster): Cluster {
    this.clusters.push(cluster);
    return cluster;
  }

  /** Brings every cluster down, then closes every gateway. */
  async closeAll(): Promise<void> {
    await Promise.all(this.clusters.map((cluster) => cluster.down().catch(() => undefined)));
    await Promise.all(this.gateways.map((gateway) => gateway.close()));
    this.clusters = [];
    this.gateways = [];
  }
}

import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { Cluster, GatewayModule, OnEvent, type GatewayEventContext, type WorkerStrategy } from '../../lib/nest';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import type { WorkerPool } from '../../lib/workers/worker-pool';
import { CapturingLogger, moduleOptions, type NestHarness } from '../module/nest-test-kit';

/** The package's worker entry plus faults on request (see the fixture). */
export const FAULTY_WORKER = join(__dirname, '..', 'workers', 'fixtures', 'faulty-shard-worker.ts');

interface Handled {
  shardId: number;
  sequence: number;
  content: string;
  sessionId: string | null;
}

/** Records every MESSAGE_CREATE its @OnEvent handler receives. */
@Injectable()
export class MessageRecorder {
  readonly handled: Handled[] = [];

  @OnEvent('MESSAGE_CREATE')
  onMessage(data: { content: string }, context: GatewayEventContext): void {
    this.handled.push({ shardId: context.shardId, sequence: context.sequence, content: data.content, sessionId: context.sessionId });
  }

  of(shardId: number): number[] {
    return this.handled.filter((h) => h.shardId === shardId).map((h) => h.sequence);
  }
}

/** A running app of {@link startWorkerApp}. */
export interface WorkerApp {
  gateway: LocalGateway;
  cluster: Cluster;
  pool: WorkerPool;
  recorder: MessageRecorder;
  logger: CapturingLogger;
}

/** A 4-shard gateway and a ready app running its shards 2 per worker thread. */
export async function startWorkerApp(harness: NestHarness, strategy: Partial<Omit<WorkerStrategy, 'type'>> = {}): Promise<WorkerApp> {
  const gateway = await harness.gateway({ shards: 4 });
  const logger = new CapturingLogger();
  const options = moduleOptions(gateway, { strategy: { type: 'workers', shardsPerWorker: 2, ...strategy } });
  const app = await harness.app({ imports: [GatewayModule.forRoot(options)], providers: [MessageRecorder] }, logger);
  const cluster = app.get(Cluster);
  return { gateway, cluster, pool: cluster.workerPool!, recorder: app.get(MessageRecorder), logger };
}

/** A MESSAGE_CREATE's data. */
export function message(seed: number): unknown {
  return createMessage(seed);
}

import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { OnEvent, type GatewayEventContext } from '../../lib/nest';
import { GatewayWorkerModule } from '../../lib/redis';

/**
 * A worker app for bench/redis-streams.ts: `GatewayWorkerModule` in group `group`, one MESSAGE_CREATE handler that
 * touches the payload and records the latency from the gateway process's receipt to the handler's start. Prints
 * `STREAM_WORKER_STARTED` once consuming, `STREAM_WORKER_PROGRESS {...}` every 100 ms, and
 * `STREAM_WORKER_RESULT {...}` (with latency percentiles) once it has handled `expected` events (0: never).
 */
interface Config {
  redisUrl: string;
  keyPrefix: string;
  group: string;
  consumer: string;
  expected: number;
}

// With --cpu-prof, the profile is written on a normal exit only.
if (process.env.BENCH_CPU_PROF) process.once('SIGTERM', () => process.exit(0));

const config = JSON.parse(process.env.BENCH_STREAM_WORKER ?? 'null') as Config;

@Injectable()
class Handler {
  private handled = 0;
  private firstAt = 0;
  private touched = 0;
  private readonly latencies: number[] = [];

  constructor() {
    // Progress for the runner, which adds up the workers of a group.
    setInterval(() => {
      if (this.handled > 0) process.stdout.write(`STREAM_WORKER_PROGRESS ${JSON.stringify({ handled: this.handled, firstAt: this.firstAt, lastAt: this.lastAt })}\n`);
    }, 100).unref();
  }

  private lastAt = 0;

  @OnEvent('MESSAGE_CREATE')
  onMessage(data: { content: string; author: { id: string } }, context: GatewayEventContext): void {
    const now = performance.timeOrigin + performance.now();
    if (this.handled === 0) this.firstAt = now;
    this.latencies.push(now - (context.receivedAt ?? now));
    this.touched += data.content.length + data.author.id.length;
    this.lastAt = now;
    if (++this.handled === config.expected) {
      const sorted = [...this.latencies].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
      process.stdout.write(
        `STREAM_WORKER_RESULT ${JSON.stringify({ events: this.handled, firstAt: this.firstAt, lastAt: now, p50Ms: at(0.5), p99Ms: at(0.99), touched: this.touched })}\n`,
      );
    }
  }
}

@Module({
  imports: [GatewayWorkerModule.forRoot({ redis: { url: config.redisUrl }, keyPrefix: config.keyPrefix, group: config.group, consumer: config.consumer })],
  providers: [Handler],
})
class WorkerModule {}

void NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn'] }).then(() => process.stdout.write('STREAM_WORKER_STARTED\n'));

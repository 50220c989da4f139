import { Injectable, UseGuards, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { ClusterService, GatewayModule, OnEvent, type GatewayEventContext, type GatewayModuleOptions } from '../../lib/nest';
import { ShardState } from '../../lib/core';
import { GATEWAY_SCALE_OUT } from '../../lib/nest/interfaces/gateway-scale-out.interface';
import type Redis from 'ioredis';
import { decodeDispatchEntry, GatewayWorkerModule, type GatewayWorkerModuleOptions, type RedisGatewayScaleOut } from '../../lib/redis';
import { createMessage, type LocalGateway } from '../../lib/nest/testing';
import { eventually, eventuallyAsync } from '../helpers/gateway-test-kit';
import { CapturingLogger, moduleOptions, type NestHarness } from '../module/nest-test-kit';

/** One handler run in a worker app. */
export interface Handled {
  content: string;
  context: GatewayEventContext;
}

/** Skips messages whose content starts with "skip": guards run in worker apps as in gateway apps. */
class NoSkipGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const message = context.getArgByIndex<{ content?: string }>(0);
    return !String(message?.content).startsWith('skip');
  }
}

/** A handler class recording into `into`; `hold` keeps a handler's promise pending until released. */
export function handlersInto(into: Handled[], hold?: { until: Promise<void>; when: (content: string) => boolean }) {
  @Injectable()
  class Handlers {
    @OnEvent('MESSAGE_CREATE')
    @UseGuards(NoSkipGuard)
    async onMessage(message: { content: string }, context: GatewayEventContext): Promise<void> {
      if (hold?.when(message.content)) await hold.until;
      into.push({ content: message.content, context });
    }
  }
  return Handlers;
}

let prefixCount = 0;

/** A key prefix no other test of this process uses. */
export function freshPrefix(): string {
  return `ndg-test:streams:${process.pid}:${++prefixCount}`;
}

/** A gateway app owning every shard of `gateway` (2), publishing to Redis Streams on `redisUrl`. */
export async function gatewayApp(
  harness: NestHarness,
  redisUrl: string,
  gateway: LocalGateway,
  keyPrefix: string,
  extra: Partial<GatewayModuleOptions> = {},
  logger = new CapturingLogger(),
): Promise<INestApplication> {
  const app = await harness.app(
    {
      imports: [
        GatewayModule.forRoot(
          moduleOptions(gateway, {
            redis: { url: redisUrl },
            keyPrefix,
            shards: { total: 2, ownership: 'redis' },
            delivery: 'redis-streams',
            leaseTtlMs: 3_000,
            ...extra,
          }),
        ),
      ],
    },
    logger,
  );
  const ready = () => app.get(ClusterService).info().filter((s) => s.state === ShardState.Ready).length;
  await eventually(() => ready() === 2, 10_000, 'both shards ready');
  return app;
}

/** The stream publisher of a gateway app. */
export function publisherOf(app: INestApplication) {
  const scaleOut = app.get<RedisGatewayScaleOut>(GATEWAY_SCALE_OUT, { strict: false });
  return scaleOut.delivery!;
}

/** A worker app of `group` running `handlers`, reading the streams on `redisUrl`. */
export async function workerApp(
  harness: NestHarness,
  redisUrl: string,
  keyPrefix: string,
  group: string,
  handlers: ReturnType<typeof handlersInto>,
  extra: Partial<GatewayWorkerModuleOptions> = {},
  logger = new CapturingLogger(),
): Promise<INestApplication> {
  return harness.app({ imports: [GatewayWorkerModule.forRoot({ redis: { url: redisUrl }, keyPrefix, group, ...extra })], providers: [handlers] }, logger);
}

/** Dispatches one MESSAGE_CREATE per content on `shardId`; returns their sequences. */
export function messages(gateway: LocalGateway, shardId: number, contents: string[]): number[] {
  return contents.map((content, i) => gateway.dispatch(shardId, 'MESSAGE_CREATE', { ...createMessage(i), content }));
}

/** One event of a shard stream as written: its entry, name, sequence, data and payload text. */
export interface StreamEvent {
  entryId: string;
  t: string;
  s: number;
  d: unknown;
  payload: string;
}

/** The events of a shard stream in order, read back as a worker reads them (throws on an unreadable entry). */
export async function streamEvents(redis: Redis, key: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for (const [id, fields] of await redis.xrangeBuffer(key, '-', '+')) {
    const decoded = decodeDispatchEntry(fields);
    if (!decoded.ok) throw new Error(`entry ${String(id)} cannot be read: ${decoded.problem}`);
    const meta = JSON.parse(String(fields[fields.findIndex((field) => String(field) === 'm') + 1])) as unknown[][];
    const payloads = fields[fields.findIndex((field) => String(field) === 'p') + 1];
    let offset = 0;
    decoded.events.forEach((item, i) => {
      const length = Number(meta[i][4]);
      const payload = payloads.toString('utf8', offset, offset + length);
      offset += length;
      if (!item.ok) throw new Error(`event ${i} of entry ${String(id)} cannot be read: ${item.problem}`);
      events.push({ entryId: String(id), t: item.event.t, s: item.event.s, d: item.event.d, payload });
    });
  }
  return events;
}

/**
 * Waits until shard stream `key` holds `events` events, then reads them all into group `group` as `consumer`, a
 * worker that then dies: the entries stay pending with it.
 */
export async function readByDeadWorker(redis: Redis, key: string, events: number, consumer = 'dead-worker', group = 'a'): Promise<void> {
  await eventuallyAsync(async () => (await streamEvents(redis, key)).length === events, 5_000, `${events} events on ${key}`);
  await redis.xreadgroup('GROUP', group, consumer, 'COUNT', 10_000, 'STREAMS', key, '>');
}

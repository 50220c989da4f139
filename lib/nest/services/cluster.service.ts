import { Inject, Injectable, Optional } from '@nestjs/common';
import { filter, firstValueFrom, type Observable } from 'rxjs';
import { Cluster, type ClusterDebugEntry, type ClusterShardInfo, type ResumableSessions } from '../../core/cluster/cluster';
import type { GuildsReadyEvent } from '../../core/cluster/guild-availability';
import type { GatewayDispatch } from '../../core/interfaces/gateway-dispatch.interface';
import type { GatewayEventData } from '../../core/interfaces/gateway-events.interface';
import type { OwnershipEvent } from '../../core/interfaces/shard-ownership-event.interface';
import { GATEWAY_SCALE_OUT, type IGatewayScaleOut } from '../interfaces/gateway-scale-out.interface';
import { ShardState } from '../../core/shard/shard-state';

/**
 * The cluster of shards this app runs: its merged event stream, its state, and starting and stopping it.
 */
@Injectable()
export class ClusterService {
  constructor(
    private readonly cluster: Cluster,
    @Optional() @Inject(GATEWAY_SCALE_OUT) private readonly scaleOut: IGatewayScaleOut | null = null,
  ) {}

  /** Every dispatch of every shard, each with its `shardId`. Using it makes the shards decode every event. */
  get events$(): Observable<GatewayDispatch> {
    this.cluster.dispatchFilter?.allowAll();
    return this.cluster.dispatch$;
  }

  /** State changes of every shard. */
  get states$(): Observable<{ shardId: number; state: ShardState }> {
    return this.cluster.state$;
  }

  /**
   * Errors of the cluster and its shards: fatal closes (a `GatewayFatalError` with the shard id and close code),
   * payloads a shard could not decode (it reconnects and resumes), session store failures.
   */
  get errors$(): Observable<Error> {
    return this.cluster.error$;
  }

  /** Debug lines of the cluster (`shardId` null) and its shards. Never contain the token. */
  get debug$(): Observable<ClusterDebugEntry> {
    return this.cluster.debug$;
  }

  /** Per shard and session: every guild listed in READY has arrived (or the wait timed out). */
  get guildsReady$(): Observable<GuildsReadyEvent> {
    return this.cluster.guildsReady$;
  }

  /** The dispatches of one event name, with typed data for names `discord-api-types` knows. */
  on<K extends string>(event: K): Observable<GatewayDispatch<GatewayEventData<K>>> {
    this.cluster.dispatchFilter?.add(event);
    return this.cluster.dispatch$.pipe(filter((e): e is GatewayDispatch<GatewayEventData<K>> => e.t === event));
  }

  /** The next dispatch of one event name. */
  once<K extends string>(event: K): Promise<GatewayDispatch<GatewayEventData<K>>> {
    return firstValueFrom(this.on(event));
  }

  /** Shard count of the whole bot (0 before the cluster starts). */
  get total(): number {
    return this.cluster.total;
  }

  /**
   * The shards this process owns, ascending. With `shards: { ownership: 'redis' }`, those whose lease it holds;
   * otherwise every shard it runs.
   */
  ownedShards(): number[] {
    return this.cluster.ownedShards;
  }

  /** Claims, releases and losses of this process's shards, and membership changes (with shard ownership). */
  get ownership$(): Observable<OwnershipEvent> {
    return this.cluster.ownership$;
  }

  /** A snapshot of every shard. With worker threads, the figures are the workers' last reports (up to 5 s old). */
  info(): ClusterShardInfo[] {
    return this.cluster.info();
  }

  /**
   * Like {@link info}, but with worker threads every worker is first asked for fresh figures (a worker that does not
   * answer within `timeoutMs` keeps its last ones). In-process, the same as `info()`.
   */
  collectInfo(timeoutMs = 2_000): Promise<ClusterShardInfo[]> {
    return this.cluster.collectInfo(timeoutMs);
  }

  /**
   * Starts the shards (done at bootstrap unless `autoConnect` is false); resolves when all are ready. With shard
   * ownership, this process then joins the others and claims its share.
   */
  async up(): Promise<void> {
    await this.cluster.up();
    await this.scaleOut?.start();
  }

  /** Resolves when every shard is ready (at once if they are). */
  ready(): Promise<void> {
    return this.cluster.ready();
  }

  /** True when every shard is ready. */
  get allReady(): boolean {
    const shards = this.cluster.info();
    return shards.length > 0 && shards.every((s) => s.state === ShardState.Ready);
  }

  /** Closes every shard with 1000, ending their sessions. With shard ownership, this process also leaves the others. */
  async down(): Promise<void> {
    await this.scaleOut?.stop('end-sessions');
    return this.cluster.down();
  }

  /**
   * Closes every shard resumably, saves and returns their sessions. With shard ownership, this process hands its
   * shards over (their sessions are in the store, not in the result) and leaves the others.
   */
  async downResumable(): Promise<ResumableSessions> {
    await this.scaleOut?.stop('resumable');
    return this.cluster.downResumable();
  }

  /** Reconnects one shard now, resuming when possible. */
  restart(shardId: number): Promise<void> {
    return this.cluster.restart(shardId);
  }

  /** The shard that receives a guild's events. */
  shardIdForGuild(guildId: string | bigint): number {
    return this.cluster.shardIdForGuild(guildId);
  }
}

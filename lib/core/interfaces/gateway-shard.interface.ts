import type { GatewaySendPayload } from 'discord-api-types/v10';
import type { Observable } from 'rxjs';
import type { GatewayFatalError } from '../errors/gateway-fatal.error';
import type { LatencyStats } from '../shard/latency-tracker';
import type { CommandBudget, ShardCloseOptions, ShardInfo } from '../shard/shard';
import type { ShardCounters } from '../shard/shard-counters';
import type { ShardState } from '../shard/shard-state';
import type { ForwardedDispatch } from './forwarded-dispatch.interface';
import type { GatewayDispatch } from './gateway-dispatch.interface';
import type { ShardSession } from './shard-session.interface';

/**
 * One shard of a bot, wherever it runs: what a `Cluster`, its services, the metrics and the testing kit read and
 * call. `Shard` runs it in this thread; the handle of a worker-thread shard (`strategy: { type: 'workers' }`) runs
 * it in a worker and honours the same contract, with the figures of the worker's last report.
 */
export interface IGatewayShard {
  /** This shard's id. */
  readonly id: number;
  /** Number of shards the bot runs. */
  readonly total: number;
  /** Counters of received events (skipped ones too), reconnects, IDENTIFYs, RESUMEs, commands and bytes. */
  readonly counters: ShardCounters;
  /** Every dispatch (op 0) event the dispatch filter wants (every one without a filter), in order, READY and RESUMED included. */
  readonly dispatch$: Observable<GatewayDispatch>;
  /** The events the dispatch filter forwards (and does not want), as the payload bytes received, in order with `dispatch$`. */
  readonly forwarded$: Observable<ForwardedDispatch>;
  /** State changes; emits the current state on subscription. */
  readonly state$: Observable<ShardState>;
  /** Human-readable trace of what the shard does. Never contains the token. */
  readonly debug$: Observable<string>;
  /** Errors the shard recovered from, and the fatal one it did not. */
  readonly error$: Observable<Error>;
  /** Current state. */
  readonly state: ShardState;
  /** The session that a later connection would resume, or null. */
  readonly session: ShardSession | null;
  /** Heartbeat round trips of the current connection. */
  readonly latencyStats: LatencyStats;
  /** Commands accepted by {@link send} and not yet written to the socket. */
  readonly pendingCommands: number;
  /** The error that closed the shard for good, if any. */
  readonly fatalError: GatewayFatalError | null;
  /** A snapshot of the shard's state, latency, sequence and budgets. */
  info(): ShardInfo;
  /** Room for user commands in the current rate-limit window. */
  commandBudget(): CommandBudget;
  /** Opens the connection; resolves once ready, rejects with a {@link GatewayFatalError} on a fatal close. */
  connect(): Promise<void>;
  /** Reconnects now (resuming when it can); resolves when ready again. */
  restart(): Promise<void>;
  /** Closes the connection; with `resumable: true` returns the session to resume later. Rejects waiting commands. */
  close(options?: ShardCloseOptions): Promise<ShardSession | null>;
  /** Sends a gateway command once the shard is ready and the rate limit has room. */
  send(command: GatewaySendPayload): Promise<void>;
  /** Stops reading from the socket (backpressure) until {@link resume}. */
  pause(): void;
  /** Starts reading from the socket again. */
  resume(): void;
  /** What `JSON.stringify` shows: never the token. */
  toJSON(): { id: number; total: number; state: ShardState; sequence: number | null };
}

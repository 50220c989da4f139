import type { ShardOptions } from '../interfaces/shard-options.interface';

/**
 * Shard timeouts, backoff and command window short enough that no test waits for real-world values. Discord's
 * 120 frames per 60 s would leave no room for commands beside sub-second test heartbeats: same limit, 6 s window.
 * The HELLO and READY timeouts (10 s) only fire when the gateway stays silent, so they stay long enough for a
 * machine whose cores are busy, where a handshake can take seconds. The backoff resets after 1 s of health, and the
 * reconnect cap (100 connections per second) is there but never slows a test that injects faults back to back.
 */
export const SHORT_SHARD_TIMINGS = {
  helloTimeout: 10_000,
  readyTimeout: 10_000,
  closeTimeout: 500,
  backoff: { baseMs: 20, maxMs: 200, resetAfterMs: 1_000 },
  reconnectLimit: { max: 100, windowMs: 1_000 },
  invalidSessionDelay: { minMs: 10, maxMs: 30 },
  commandRateLimit: { limit: 120, windowMs: 6_000 },
} satisfies Partial<ShardOptions>;

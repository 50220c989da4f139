import type { BackoffOptions } from '../interfaces/shard-options.interface';

/**
 * Delay before reconnect attempt `attempt` (0 = the first after a connection that stayed healthy, which is
 * immediate): `min(maxMs, baseMs * 2^(attempt-1))` scaled by a jitter factor in [0.5, 1).
 */
export function backoffDelay(attempt: number, options: Pick<BackoffOptions, 'baseMs' | 'maxMs'>, random: () => number): number {
  if (attempt <= 0) return 0;
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling * (0.5 + random() / 2));
}

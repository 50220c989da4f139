/**
 * What a cluster asks, when it saves a shard's session, about the events its consumers are still handling: the
 * saved sequence stays below the oldest of them, so that a process taking the shard over after a crash replays
 * every event whose handling had not finished. `GatewayEventRouter` is one (its handlers' promises).
 */
export interface IHandlingTracker {
  /** The lowest sequence of `shardId` whose handling has not settled yet; null when none is pending. */
  oldestUnsettled(shardId: number): number | null;
}

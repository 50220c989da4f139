/**
 * A change of which shards this process owns, or of who the processes sharing the shards are, as reported by an
 * ownership layer (such as `ShardOwnership` of `nestjs-discord-gateway/redis`).
 *
 * - `claimed`: this process took the shard's lease and starts (or resumes) it.
 * - `released`: this process handed the shard over on purpose (its session saved for the next owner).
 * - `lost`: this process stopped holding the shard without handing it over (lease expired or taken).
 * - `members`: the live processes, sorted by id.
 */
export type OwnershipEvent =
  | { type: 'claimed'; shardId: number }
  | { type: 'released'; shardId: number }
  | { type: 'lost'; shardId: number; reason: string }
  | { type: 'members'; members: string[] };

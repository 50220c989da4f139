/**
 * What a shard needs to resume a gateway session on a new connection.
 */
export interface ShardSession {
  /** `session_id` from READY. */
  sessionId: string;
  /** The last sequence number received; sent as `seq` in RESUME. */
  sequence: number | null;
  /** `resume_gateway_url` from READY. */
  resumeUrl: string;
  /** The shard count the session was opened with, when known. */
  shardCount?: number;
}

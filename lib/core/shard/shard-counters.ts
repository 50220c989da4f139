/** Why a shard opened a new connection. */
export type ReconnectReason =
  | 'restart'
  | 'hello-timeout'
  | 'ready-timeout'
  | 'zombie'
  | 'reconnect-request'
  | 'invalid-session'
  | 'decode-error'
  | `close-${number}`;

/** Plain counters of what a shard received and did; cheap enough to keep on the per-event path. */
export class ShardCounters {
  /** Dispatches received per event name, decoded or skipped. */
  readonly eventsByType = new Map<string, number>();
  /** New connections, by reason. */
  readonly reconnectsByReason = new Map<ReconnectReason, number>();
  /** IDENTIFYs sent. */
  identifies = 0;
  /** RESUMEs sent. */
  resumes = 0;
  /** Bytes of payload text received, after decompression. */
  payloadBytes = 0;
  /** Bytes received on the socket, before decompression. */
  receivedBytes = 0;
  /** User commands (presence, voice, member requests...) written to the socket; one retried after a broken write counts again. */
  commandsSent = 0;

  /** Counts one dispatch. */
  countEvent(t: string): void {
    this.eventsByType.set(t, (this.eventsByType.get(t) ?? 0) + 1);
  }

  /** Counts one reconnect. */
  countReconnect(reason: ReconnectReason): void {
    this.reconnectsByReason.set(reason, (this.reconnectsByReason.get(reason) ?? 0) + 1);
  }
}

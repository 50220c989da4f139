/**
 * Lifecycle states of a {@link Shard}.
 */
export enum ShardState {
  /** No connection, and none being opened (before `connect()`, after `close()`, or waiting to reconnect). */
  Disconnected = 'disconnected',
  /** Opening a WebSocket and waiting for HELLO. */
  Connecting = 'connecting',
  /** Waiting for the identify queue, or for READY after IDENTIFY. */
  Identifying = 'identifying',
  /** RESUME sent; replayed events may be arriving; waiting for RESUMED. */
  Resuming = 'resuming',
  /** Session up: commands flow. */
  Ready = 'ready',
  /** Closed by a fatal close code; never reconnects. */
  FatallyClosed = 'fatally-closed',
}

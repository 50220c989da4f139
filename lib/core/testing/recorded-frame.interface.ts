/** One payload a client sent to the {@link LocalGateway}, as recorded. */
export interface RecordedFrame {
  /** Id of the connection it came on. */
  connectionId: number;
  /** Shard id of that connection, once known from IDENTIFY or RESUME. */
  shardId: number | null;
  /** The payload's opcode. */
  op: number;
  /** The payload's data. */
  d: any;
  /** When it arrived (`Date.now()`). */
  at: number;
  /** Size of the raw frame, bytes. */
  bytes: number;
}

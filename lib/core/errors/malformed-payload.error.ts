/** Where a malformed dispatch came from and what was wrong with it. */
export interface MalformedPayloadReport {
  /** Id of the shard that received it. */
  shardId: number;
  /** Event name (`t`). */
  event: string;
  /** Sequence number (`s`). */
  sequence: number;
  /** What its data lacked, e.g. `d.members is not an array`. Never quotes the data. */
  problem: string;
}

/**
 * A dispatch whose data does not have the shape its consumer needs. The cluster reports each one once (on
 * `error$`, counted per shard and event) and goes on; a request that was waiting for it rejects with this error,
 * naming the request in `request`.
 */
export class MalformedPayloadError extends Error implements MalformedPayloadReport {
  override readonly name = 'MalformedPayloadError';
  readonly shardId: number;
  readonly event: string;
  readonly sequence: number;
  readonly problem: string;

  constructor(
    report: MalformedPayloadReport,
    /** The request that failed because of it, e.g. `the member request for guild 123`. */
    readonly request: string | null = null,
  ) {
    const where = `${report.event} (shard ${report.shardId}, sequence ${report.sequence})`;
    super(
      request === null
        ? `Malformed ${where}: ${report.problem}`
        : `${capitalise(request)} failed: its reply ${where} was malformed: ${report.problem}`,
    );
    this.shardId = report.shardId;
    this.event = report.event;
    this.sequence = report.sequence;
    this.problem = report.problem;
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

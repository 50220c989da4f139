/**
 * A close code after which Discord will not accept the shard again without a change on the bot's side.
 * The shard stops for good and reports this error.
 */
export class GatewayFatalError extends Error {
  override readonly name = 'GatewayFatalError';

  constructor(
    /** Id of the shard that was closed. */
    readonly shardId: number,
    /** The gateway close code, e.g. `4014`. */
    readonly code: number,
    /** Why the shard cannot come back, without the shard id and code. */
    readonly reason: string,
  ) {
    super(`Shard ${shardId} closed for good (${code}): ${reason}`);
  }
}

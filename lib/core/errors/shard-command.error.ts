/**
 * A command that a shard refused or could not deliver: too large, malformed, or the shard closed first.
 */
export class ShardCommandError extends Error {
  override readonly name = 'ShardCommandError';

  constructor(
    /** Id of the shard the command was for. */
    readonly shardId: number,
    message: string,
  ) {
    super(`Shard ${shardId}: ${message}`);
  }
}

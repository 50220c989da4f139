/**
 * Turns the binary WebSocket messages of one connection back into whole gateway payloads.
 * One instance belongs to one connection and is thrown away with it.
 */
export interface IDecompressor {
  /**
   * Feeds one WebSocket message. Whole payloads are handed to the `onPayload` callback, in order; a Buffer
   * handed over may be reused once the callback returns, so the callback copies what it keeps.
   */
  push(data: Buffer): void;
  /** Releases the decompression context. Nothing is delivered after this. */
  close(): void;
}

/**
 * Creates a decompressor for each new connection.
 */
export interface IDecompressorFactory {
  /** The value of the gateway URL's `compress` query parameter (ignored for payload compression). */
  readonly query: string;
  /**
   * True for payload compression: no `compress` URL parameter, IDENTIFY asks for `compress: true`, and each binary
   * WebSocket message holds one zlib-compressed payload while text messages are plain JSON. @defaultValue `false`
   */
  readonly payload?: boolean;
  /**
   * Creates a fresh context for one connection. A message whose compressed or inflated size exceeds
   * `limits.maxMessageBytes` is reported through `onError`. Errors say what went wrong without a prefix (e.g.
   * `invalid stored block lengths`): the shard reports them as `decompression failed: <message>`.
   */
  create(
    onPayload: (payload: Buffer | string) => void,
    onError: (error: Error) => void,
    limits: { maxMessageBytes: number },
    flow?: DecompressorFlow,
  ): IDecompressor;
}

/**
 * Lets an asynchronous decompressor hold the socket back while its backlog is long, so that nothing piles up
 * between the socket and the decompressor. Synchronous decompressors never need it.
 */
export interface DecompressorFlow {
  /** Stop reading the socket. */
  pause(): void;
  /** Read again (the shard keeps it paused if it paused reading for its own reasons). */
  resume(): void;
}

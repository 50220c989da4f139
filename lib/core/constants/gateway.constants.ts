/** Gateway API version this library speaks. */
export const GATEWAY_VERSION = 10;

/**
 * Gateway URL used when no other is configured or discovered.
 * @defaultValue `'wss://gateway.discord.gg'`
 */
export const DEFAULT_GATEWAY_URL = 'wss://gateway.discord.gg';

/** The bytes every complete zlib-stream message ends with (a Z_SYNC_FLUSH marker). */
export const ZLIB_SUFFIX = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Largest payload, in UTF-8 bytes, that Discord accepts from a client. */
export const MAX_OUTGOING_PAYLOAD_BYTES = 4096;

/**
 * Largest step forward a dispatch's `s` may take from the last sequence number; a larger one is a protocol error
 * (the shard reconnects and resumes from the last good number), never a new watermark. The gateway numbers a
 * session's dispatches one by one and replays from the client's own `seq` on RESUME, so real steps are 1; the bound
 * is generous so that no plausible gap trips it, and small enough that a corrupt number (e.g. `2^53 - 1`) cannot
 * make the duplicate filter drop the rest of the session.
 */
export const MAX_SEQUENCE_JUMP = 100_000;

/**
 * Close codes this library sends.
 */
export const ShardCloseCode = {
  /** Ends the session: Discord shows the bot offline and the session cannot be resumed. */
  Normal: 1000,
  /** Closes the connection but keeps the session for a later RESUME. */
  Resuming: 4200,
} as const;

/** `User-Agent` header sent when opening a gateway connection. */
export const USER_AGENT = 'DiscordBot (https://github.com/nestjs-discord-gateway/nestjs-discord-gateway, 0.1.0)';

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

import type { ResolvedShardOptions } from '../interfaces/shard-options.interface';
import { realClock } from '../shard/real-clock';

/**
 * Defaults applied to every `ShardOptions` field that is left out.
 */
export const DefaultShardOptions: Omit<
  ResolvedShardOptions,
  'id' | 'total' | 'intents' | 'presence' | 'session' | 'identifyQueue' | 'compression' | 'dispatchFilter' | 'handshakeGuard'
> & { compression: 'zlib-stream' } = {
  gatewayUrl: 'wss://gateway.discord.gg',
  compression: 'zlib-stream',
  largeThreshold: 50,
  identifyProperties: {
    os: process.platform,
    browser: 'nestjs-discord-gateway',
    device: 'nestjs-discord-gateway',
  },
  handshakeTimeout: 30_000,
  helloTimeout: 60_000,
  readyTimeout: 15_000,
  closeTimeout: 5_000,
  backoff: { baseMs: 1_000, maxMs: 60_000, resetAfterMs: 30_000 },
  reconnectLimit: { max: 10, windowMs: 60_000 },
  heartbeatIntervalRange: { minMs: 100, maxMs: 300_000 },
  invalidSessionDelay: { minMs: 1_000, maxMs: 5_000 },
  commandRateLimit: { limit: 120, windowMs: 60_000 },
  random: Math.random,
  maxMessageBytes: 64 * 1024 * 1024,
  allowInsecureGateway: false,
  clock: realClock,
};

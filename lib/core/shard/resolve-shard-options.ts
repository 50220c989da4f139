import { DefaultShardOptions } from '../constants/shard-defaults.constant';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import { resolveCompression } from '../compression/resolve-compression';
import type { Clock } from '../interfaces/clock.interface';
import type { ResolvedShardOptions, ShardOptions } from '../interfaces/shard-options.interface';
import { InMemoryIdentifyQueue } from '../queue/in-memory-identify-queue';
import { requireTransportUrl } from './transport-security';

/** Longest delay a Node timer takes as it is (longer ones fire after 1 ms, with a warning). */
const MAX_TIMER_MS = 2_147_483_647;

function requireInteger(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new GatewayOptionsError(option, `must be an integer ${range}, got ${describe(value)}`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : typeof value;
}

/**
 * Validates shard options and fills in defaults. Throws {@link GatewayOptionsError} naming the first bad option.
 * The token is checked but not part of the result.
 */
export function resolveShardOptions(options: ShardOptions): ResolvedShardOptions {
  if (typeof options !== 'object' || options === null) {
    throw new GatewayOptionsError('options', 'must be an object');
  }
  if (typeof options.token !== 'string' || options.token.trim().length === 0) {
    throw new GatewayOptionsError('token', 'must be a non-empty string');
  }
  const total = requireInteger('total', options.total, 1);
  const id = requireInteger('id', options.id, 0);
  if (id >= total) throw new GatewayOptionsError('id', `must be less than total (${total}), got ${id}`);
  const intents = requireInteger('intents', options.intents, 0);
  const largeThreshold = requireInteger('largeThreshold', options.largeThreshold ?? DefaultShardOptions.largeThreshold, 50, 250);

  const allowInsecureGateway = options.allowInsecureGateway ?? DefaultShardOptions.allowInsecureGateway;
  if (typeof allowInsecureGateway !== 'boolean') throw new GatewayOptionsError('allowInsecureGateway', 'must be a boolean');
  const gatewayUrl = options.gatewayUrl ?? DefaultShardOptions.gatewayUrl;
  requireTransportUrl('gatewayUrl', gatewayUrl, ['ws:', 'wss:'], allowInsecureGateway);

  const compression = resolveCompression(options.compression ?? DefaultShardOptions.compression);

  const positive = (option: string, value: number | undefined, fallback: number): number =>
    requireInteger(option, value ?? fallback, 1);

  const backoff = {
    baseMs: positive('backoff.baseMs', options.backoff?.baseMs, DefaultShardOptions.backoff.baseMs),
    maxMs: positive('backoff.maxMs', options.backoff?.maxMs, DefaultShardOptions.backoff.maxMs),
    resetAfterMs: requireInteger('backoff.resetAfterMs', options.backoff?.resetAfterMs ?? DefaultShardOptions.backoff.resetAfterMs, 0, MAX_TIMER_MS),
  };
  const reconnectLimit = {
    max: positive('reconnectLimit.max', options.reconnectLimit?.max, DefaultShardOptions.reconnectLimit.max),
    windowMs: requireInteger('reconnectLimit.windowMs', options.reconnectLimit?.windowMs ?? DefaultShardOptions.reconnectLimit.windowMs, 1, MAX_TIMER_MS),
  };
  const range = options.heartbeatIntervalRange;
  const heartbeatIntervalRange = {
    minMs: requireInteger('heartbeatIntervalRange.minMs', range?.minMs ?? DefaultShardOptions.heartbeatIntervalRange.minMs, 1, MAX_TIMER_MS),
    maxMs: requireInteger('heartbeatIntervalRange.maxMs', range?.maxMs ?? DefaultShardOptions.heartbeatIntervalRange.maxMs, 1, MAX_TIMER_MS),
  };
  if (heartbeatIntervalRange.maxMs < heartbeatIntervalRange.minMs) {
    throw new GatewayOptionsError('heartbeatIntervalRange.maxMs', 'must not be less than heartbeatIntervalRange.minMs');
  }
  const invalidSessionDelay = {
    minMs: requireInteger('invalidSessionDelay.minMs', options.invalidSessionDelay?.minMs ?? DefaultShardOptions.invalidSessionDelay.minMs, 0),
    maxMs: requireInteger('invalidSessionDelay.maxMs', options.invalidSessionDelay?.maxMs ?? DefaultShardOptions.invalidSessionDelay.maxMs, 0),
  };
  if (invalidSessionDelay.maxMs < invalidSessionDelay.minMs) {
    throw new GatewayOptionsError('invalidSessionDelay.maxMs', 'must not be less than invalidSessionDelay.minMs');
  }
  const commandRateLimit = {
    limit: requireInteger('commandRateLimit.limit', options.commandRateLimit?.limit ?? DefaultShardOptions.commandRateLimit.limit, 2, 120),
    windowMs: positive('commandRateLimit.windowMs', options.commandRateLimit?.windowMs, DefaultShardOptions.commandRateLimit.windowMs),
  };

  const session = options.session ?? null;
  if (session !== null) {
    if (typeof session.sessionId !== 'string' || session.sessionId.length === 0) {
      throw new GatewayOptionsError('session.sessionId', 'must be a non-empty string');
    }
    if (typeof session.resumeUrl !== 'string') {
      throw new GatewayOptionsError('session.resumeUrl', 'must be a URL string');
    }
    if (session.sequence !== null && !Number.isInteger(session.sequence)) {
      throw new GatewayOptionsError('session.sequence', 'must be an integer or null');
    }
  }

  if (options.handshakeGuard !== undefined && typeof options.handshakeGuard !== 'function') {
    throw new GatewayOptionsError('handshakeGuard', 'must be a function returning a Promise<boolean>');
  }
  const clock = options.clock ?? DefaultShardOptions.clock;
  if (!isClock(clock)) {
    throw new GatewayOptionsError('clock', 'must have the methods now, setTimeout, clearTimeout, setInterval and clearInterval');
  }

  return {
    id,
    total,
    intents,
    gatewayUrl,
    compression,
    largeThreshold,
    presence: options.presence,
    identifyProperties: options.identifyProperties ?? DefaultShardOptions.identifyProperties,
    identifyQueue: options.identifyQueue ?? new InMemoryIdentifyQueue(),
    session,
    handshakeTimeout: positive('handshakeTimeout', options.handshakeTimeout, DefaultShardOptions.handshakeTimeout),
    helloTimeout: positive('helloTimeout', options.helloTimeout, DefaultShardOptions.helloTimeout),
    readyTimeout: positive('readyTimeout', options.readyTimeout, DefaultShardOptions.readyTimeout),
    closeTimeout: positive('closeTimeout', options.closeTimeout, DefaultShardOptions.closeTimeout),
    backoff,
    reconnectLimit,
    heartbeatIntervalRange,
    invalidSessionDelay,
    commandRateLimit,
    random: options.random ?? DefaultShardOptions.random,
    maxMessageBytes: requireInteger('maxMessageBytes', options.maxMessageBytes ?? DefaultShardOptions.maxMessageBytes, 4096),
    allowInsecureGateway,
    dispatchFilter: options.dispatchFilter,
    handshakeGuard: options.handshakeGuard,
    clock,
  };
}

/** True when `value` has every method of a {@link Clock}. */
function isClock(value: unknown): value is Clock {
  if (typeof value !== 'object' || value === null) return false;
  const methods = value as Record<string, unknown>;
  return CLOCK_METHODS.every((name) => typeof methods[name] === 'function');
}

const CLOCK_METHODS = ['now', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'];

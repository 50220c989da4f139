import { isAbsolute } from 'node:path';
import { GatewayOptionsError } from '../errors/gateway-options.error';
import type { ClusterOptions } from '../interfaces/cluster-options.interface';
import type { ShardSession } from '../interfaces/shard-session.interface';
import { resolveShardOptions } from '../shard/resolve-shard-options';
import { requireTransportUrl } from '../shard/transport-security';
import { validateShardScheme } from './resolve-shard-scheme';

/**
 * Checks cluster options the way the `Cluster` constructor does, without creating anything.
 * @throws {@link GatewayOptionsError} naming the first invalid option.
 */
export function validateClusterOptions(options: ClusterOptions): void {
  validateShardScheme(options?.shards);
  resolveShardOptions({ ...options, id: 0, total: 1, gatewayUrl: options.gatewayUrl });
  const sequenceSave = options.sequenceSaveIntervalMs;
  if (sequenceSave !== undefined && sequenceSave !== null && (!Number.isInteger(sequenceSave) || sequenceSave < 0)) {
    throw new GatewayOptionsError('sequenceSaveIntervalMs', `must be an integer >= 0 or null, got ${typeof sequenceSave === 'number' ? sequenceSave : typeof sequenceSave}`);
  }
  for (const key of ['identifyWindowMs', 'sessionSaveIntervalMs', 'guildReadyTimeout', 'startTimeout'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      // Only numbers are echoed: a string here could be a token given to the wrong option.
      throw new GatewayOptionsError(key, `must be an integer >= 1, got ${typeof value === 'number' ? value : typeof value}`);
    }
  }
  const cooldown = options.memberRequestCooldownMs;
  if (cooldown !== undefined && (!Number.isInteger(cooldown) || cooldown < 0)) {
    throw new GatewayOptionsError('memberRequestCooldownMs', 'must be an integer >= 0');
  }
  if (!options.gatewayInfo) {
    requireTransportUrl('apiUrl', options.apiUrl ?? 'https://discord.com/api', ['http:', 'https:'], !!options.allowInsecureGateway);
  }
  validateStrategy(options.strategy);
  validateSessions(options.sessions);
}

/**
 * Checks `options.sessions` and returns them by shard id (null when not given).
 * @throws {@link GatewayOptionsError} naming the first invalid session field.
 */
export function validateSessions(sessions: ClusterOptions['sessions']): Map<number, ShardSession> | null {
  if (sessions === undefined) return null;
  if (typeof sessions !== 'object' || sessions === null) throw new GatewayOptionsError('sessions', 'must be an object of sessions by shard id');
  const result = new Map<number, ShardSession>();
  for (const [key, value] of Object.entries(sessions)) {
    const id = Number(key);
    const at = `sessions[${key}]`;
    if (!Number.isInteger(id) || id < 0 || String(id) !== key) throw new GatewayOptionsError(at, 'must be keyed by a shard id (an integer >= 0)');
    const session = value as Partial<ShardSession> | null;
    if (typeof session !== 'object' || session === null) throw new GatewayOptionsError(at, 'must be { sessionId, sequence, resumeUrl }');
    if (typeof session.sessionId !== 'string' || session.sessionId === '') throw new GatewayOptionsError(`${at}.sessionId`, 'must be a non-empty string');
    if (session.sequence !== null && (!Number.isInteger(session.sequence) || session.sequence! < 0)) {
      throw new GatewayOptionsError(`${at}.sequence`, 'must be an integer >= 0 or null');
    }
    if (typeof session.resumeUrl !== 'string' || !/^wss?:\/\/./.test(session.resumeUrl)) {
      throw new GatewayOptionsError(`${at}.resumeUrl`, 'must be a ws:// or wss:// URL');
    }
    result.set(id, { ...(session as ShardSession) });
  }
  return result;
}

function validateStrategy(strategy: ClusterOptions['strategy']): void {
  if (strategy === undefined) return;
  if (typeof strategy !== 'object' || strategy === null || (strategy.type !== 'in-process' && strategy.type !== 'workers')) {
    throw new GatewayOptionsError('strategy', `must be { type: 'in-process' } or { type: 'workers', shardsPerWorker? }`);
  }
  if (strategy.type !== 'workers') return;
  for (const key of ['shardsPerWorker', 'pingIntervalMs', 'pingTimeoutMs', 'sessionReportIntervalMs'] as const) {
    const value = strategy[key];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new GatewayOptionsError(`strategy.${key}`, `must be an integer >= 1, got ${typeof value === 'number' ? value : typeof value}`);
    }
  }
  const entry = strategy.workerEntry;
  if (entry !== undefined && (typeof entry !== 'string' || !isAbsolute(entry))) {
    throw new GatewayOptionsError('strategy.workerEntry', 'must be an absolute path');
  }
}

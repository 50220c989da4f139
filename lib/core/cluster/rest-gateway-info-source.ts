import type { RESTGetAPIGatewayBotResult } from 'discord-api-types/v10';
import { GATEWAY_VERSION, USER_AGENT } from '../constants/gateway.constants';
import type { IGatewayInfoSource } from '../interfaces/gateway-info.interface';
import { requireTransportUrl } from '../shard/transport-security';

/** Options of {@link RestGatewayInfoSource}. */
export interface RestGatewayInfoSourceOptions {
  /** Bot token, sent as `Authorization: Bot <token>`. */
  token: string;
  /** Base URL of Discord's HTTP API, without the version. @defaultValue `'https://discord.com/api'` */
  apiUrl?: string;
  /** Allow an `http://` URL that is not on loopback. @defaultValue `false` */
  allowInsecure?: boolean;
  /** Request timeout, ms. @defaultValue `15000` */
  timeoutMs?: number;
}

/**
 * Reads `GET /gateway/bot` over HTTP with Node's own `fetch`.
 */
export class RestGatewayInfoSource implements IGatewayInfoSource {
  readonly #token: string;
  private readonly url: string;
  private readonly timeoutMs: number;

  constructor(options: RestGatewayInfoSourceOptions) {
    this.#token = options.token;
    const base = requireTransportUrl('apiUrl', options.apiUrl ?? 'https://discord.com/api', ['http:', 'https:'], !!options.allowInsecure);
    this.url = `${base.toString().replace(/\/+$/, '')}/v${GATEWAY_VERSION}/gateway/bot`;
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  async fetch(): Promise<RESTGetAPIGatewayBotResult> {
    let response: Response;
    try {
      response = await fetch(this.url, {
        headers: { Authorization: `Bot ${this.#token}`, 'User-Agent': USER_AGENT },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new Error(`GET ${this.url} failed: ${describeFetchError(error, this.timeoutMs)}`);
    }
    if (!response.ok) {
      const hint = response.status === 401 ? ' (the token was refused)' : '';
      throw new Error(`GET ${this.url} answered ${response.status}${hint}`);
    }
    const body = (await response.json()) as RESTGetAPIGatewayBotResult;
    if (typeof body?.url !== 'string' || !Number.isInteger(body.shards) || typeof body.session_start_limit !== 'object') {
      throw new Error(`GET ${this.url} returned an unexpected body`);
    }
    return body;
  }

  /** Hides the token from `util.inspect`. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RestGatewayInfoSource { url: '${this.url}' }`;
  }
}

/**
 * What went wrong with a `fetch` that threw: Node's `fetch failed` plus its cause (refused connection, unknown
 * host, TLS failure...), which is where the useful part is.
 */
function describeFetchError(error: unknown, timeoutMs: number): string {
  const failure = error as Error & { cause?: unknown };
  if (failure?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  const causes: string[] = [];
  let cause = failure?.cause as (Error & { code?: string; errors?: unknown[]; cause?: unknown }) | undefined;
  for (let depth = 0; cause && depth < 4; depth++) {
    const nested = Array.isArray(cause.errors) ? (cause.errors as Error[]).map((e) => e?.message).filter(Boolean) : [];
    const text = (cause.message || nested.join(', ') || cause.code || '').trim();
    if (text) causes.push(cause.code && !text.includes(cause.code) ? `${cause.code}: ${text}` : text);
    cause = cause.cause as typeof cause;
  }
  const message = String(failure?.message ?? error);
  return causes.length > 0 ? `${message} (${causes.join('; ')})` : message;
}

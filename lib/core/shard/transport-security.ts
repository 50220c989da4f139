import { GatewayOptionsError } from '../errors/gateway-options.error';

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]', '::1']);

/** True for 127.0.0.0/8, `localhost` and `::1`. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

/**
 * True when `url` keeps the token safe in transit: `wss://` / `https://`, or a plain scheme on loopback, or any
 * scheme when insecure transport was explicitly allowed.
 */
export function isTransportAllowed(url: URL, allowInsecure: boolean): boolean {
  if (url.protocol === 'wss:' || url.protocol === 'https:') return true;
  return allowInsecure || isLoopbackHost(url.hostname);
}

/**
 * Parses and checks a URL option. Throws {@link GatewayOptionsError} naming `option` when the URL is malformed,
 * has another scheme than `schemes`, or is insecure and not on loopback.
 */
export function requireTransportUrl(option: string, value: unknown, schemes: readonly string[], allowInsecure: boolean): URL {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new GatewayOptionsError(option, `must be an absolute ${schemes.map((s) => `${s}//`).join(' or ')} URL`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new GatewayOptionsError(option, `must use ${schemes.map((s) => `${s}//`).join(' or ')}, got ${url.protocol}`);
  }
  if (!isTransportAllowed(url, allowInsecure)) {
    throw new GatewayOptionsError(
      option,
      `${url.protocol}// would send the token unencrypted: use ${url.protocol === 'ws:' ? 'wss' : 'https'}://, a loopback address, or set allowInsecureGateway`,
    );
  }
  return url;
}

import { GatewayOptionsError } from '../errors/gateway-options.error';

/**
 * Loads an optional package that an option asked for. When it is not installed, throws
 * {@link GatewayOptionsError} naming the option and the package: a configured engine is never swapped for
 * another one silently.
 */
export function loadOptionalModule<T>(option: string, packageName: string, purpose: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(packageName) as T;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const missing = code === 'MODULE_NOT_FOUND' && (error as Error).message.includes(`'${packageName}'`);
    const reason = missing ? 'is not installed' : `could not be loaded (${(error as Error).message.split('\n')[0]})`;
    throw new GatewayOptionsError(option, `${purpose} needs the optional package "${packageName}", which ${reason}; install it (npm install ${packageName}) or choose another engine`);
  }
}

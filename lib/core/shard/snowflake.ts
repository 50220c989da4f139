import { GatewayOptionsError } from '../errors/gateway-options.error';

const SNOWFLAKE = /^\d{1,20}$/;

/**
 * Checks that `value` is a snowflake string (1 to 20 digits), as ids in commands must be.
 * @throws {@link GatewayOptionsError} naming `field` otherwise.
 */
export function requireSnowflake(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !SNOWFLAKE.test(value)) {
    throw new GatewayOptionsError(field, 'must be a snowflake string');
  }
}

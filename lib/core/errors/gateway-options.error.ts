/**
 * Thrown when an option is missing or invalid. `option` names it, e.g. `largeThreshold`.
 */
export class GatewayOptionsError extends Error {
  override readonly name = 'GatewayOptionsError';

  constructor(
    /** Path of the offending option. */
    readonly option: string,
    problem: string,
  ) {
    super(`Invalid option "${option}": ${problem}`);
  }
}

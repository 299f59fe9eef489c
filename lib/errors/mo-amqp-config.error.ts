/** One bad configuration value: where it came from, what it was, what is allowed. */
export interface MoAmqpConfigProblem {
  /** The environment variable (`AMQP__PORT`) or module option (`port`). */
  readonly name: string;
  /** The received value as shown to the user, passwords masked. */
  readonly received: string;
  readonly allowed: string;
}

/**
 * Configuration that cannot work, raised at boot before anything connects.
 * The message lists every problem, one per line.
 */
export class MoAmqpConfigError extends Error {
  override readonly name = 'MoAmqpConfigError';

  constructor(readonly problems: readonly MoAmqpConfigProblem[]) {
    super(
      `Invalid AMQP configuration:\n${problems
        .map((p) => `  - ${p.name}: received ${p.received}; allowed: ${p.allowed}`)
        .join('\n')}`,
    );
  }
}

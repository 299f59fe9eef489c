/** Options of `MoDelayAgentModule`; all optional. */
export interface MoDelayAgentOptions {
  /** Names the agent's queues and exchanges: `<prefix>.incoming`, `.hold.NN`, `.wait.NN`, `.due`, `.dlq`. Default `mo-delay-agent`. */
  prefix?: string;
  /**
   * The type of the agent's queues: `classic` (default), or `quorum` for clusters:
   * replicated, at-least-once dead-lettering along the ladder, and a message handed
   * out 20 times from `.incoming` or `.due` (agents dying on it) goes to `.dlq`.
   */
  queueType?: 'classic' | 'quorum';
  /** Messages the agent handles at once per queue (incoming, due). Default 2000. */
  prefetch?: number;
  /**
   * A message due within this many milliseconds (at most 60000) waits in the
   * hold queue of its due second, which the agent consumes around that second,
   * instead of in the ladder: three broker writes instead of six or seven.
   * 0: every message due in a second or more takes the ladder. Default 60000.
   */
  holdMs?: number;
}

/** The agent's options with every default filled in, checked and frozen: what `loadMoDelayAgentOptionsFromEnv()` returns. */
export type ResolvedMoDelayAgentOptions = Readonly<Required<MoDelayAgentOptions>>;

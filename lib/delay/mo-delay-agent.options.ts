/** Options of `MoDelayAgentModule`; all optional. */
export interface MoDelayAgentOptions {
  /** Names the agent's queues and exchanges: `<prefix>.incoming`, `.wait.NN`, `.due`, `.dlq`. Default `mo-delay-agent`. */
  prefix?: string;
  /**
   * `quorum` for clusters: replicated, at-least-once dead-lettering along the ladder,
   * and a message handed out 20 times from `.incoming` or `.due` (agents dying on it)
   * goes to `.dlq`. Default `classic`.
   */
  queueType?: 'classic' | 'quorum';
  /** Messages the agent handles at once per queue (incoming, due). Default 2000. */
  prefetch?: number;
}

export type ResolvedMoDelayAgentOptions = Readonly<Required<MoDelayAgentOptions>>;

/** What the agent has done since it started. */
export interface MoDelayAgentStats {
  /** Forwarded to the delayed exchange (confirmed). */
  forwarded: number;
  /** Put into the hold queue of its due second (due within `holdMs`). */
  parked: number;
  /** Put into the ladder to wait (a long wait may go round more than once). */
  laddered: number;
  /** Sent to the agent's dead-letter queue (malformed). */
  deadLettered: number;
  /** Waiting in memory now for the last fraction of a second. */
  holding: number;
}

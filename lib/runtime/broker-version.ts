import type { Channel } from 'amqplib';

/** The RabbitMQ version a channel's broker announced (its `version` server property). */
export interface BrokerVersion {
  readonly major: number;
  readonly minor: number;
  /** As announced, e.g. "4.3.6"; "unknown" when the server said none. */
  readonly text: string;
}

/**
 * Reads the version from the connection's server properties (public amqplib API,
 * filled from the broker's connection.start). Each channel asks anew: after a
 * reconnect, a cluster in a rolling upgrade may answer with another version. A
 * version it cannot read counts as 0.0, so nothing of a later version is assumed.
 */
export function brokerVersionOf(channel: Pick<Channel, 'connection'>): BrokerVersion {
  const announced: unknown = channel.connection?.serverProperties?.version;
  const text = typeof announced === 'string' ? announced : 'unknown';
  const m = /^(\d+)\.(\d+)/.exec(text);
  return { major: m ? Number(m[1]) : 0, minor: m ? Number(m[2]) : 0, text };
}

/** At least `major.minor`. */
export function atLeast(version: BrokerVersion, major: number, minor = 0): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

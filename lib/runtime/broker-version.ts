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

/**
 * The warning for classic queues on a RabbitMQ 4.x cluster (more than one node
 * in AMQP__URL): 4.0 removed classic queue mirroring, so a classic queue and
 * what it holds live on one node, and are gone with it. Undefined otherwise.
 */
export function classicOnClusterWarning(
  version: BrokerVersion,
  nodes: number,
  queues: string,
  setting: string,
): string | undefined {
  if (nodes < 2 || !atLeast(version, 4)) return undefined;
  return (
    `${queues} are classic queues, and AMQP__URL names ${nodes} nodes of RabbitMQ ${version.text}: ` +
    `since RabbitMQ 4.0 a classic queue is not replicated, so what it holds is lost with its node. ` +
    `${setting} makes them quorum queues (replicated; docs/operations.md#queue-types says how to move)`
  );
}

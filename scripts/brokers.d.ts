// Types of scripts/brokers.js, for the tests that read it.
export interface Broker {
  readonly version: string;
  readonly suite: string;
  readonly chroot: boolean;
  readonly epmdPort: number;
  readonly denyDeprecated: boolean;
  readonly amqpPort: number;
  readonly distPort: number;
  readonly managementPort: number;
  readonly nodeName: string;
  readonly clusterNodePrefix: string;
  readonly clusterAmqpPortBase: number;
  readonly clusterDistPortBase: number;
  readonly tlsPort: number;
  readonly tlsDistPort: number;
  readonly tlsNodeName: string;
  readonly url: string;
}
export const BROKERS: Record<
  string,
  { suite: string; chroot: boolean; offset: number; epmdPort: number; denyDeprecated: boolean }
>;
/** The version BROKER names ('3.10' when unset). */
export function versionOf(name?: string): string;
export function broker(name?: string): Broker;

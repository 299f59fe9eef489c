import type { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel, ChannelModel } from 'amqplib';
import { BROKER_ANSWER_WAIT_MS, settlesWithin } from '../util/settles-within';

// A channel the broker closed while the connection stayed up (an exchange deleted
// under us, a refused declaration) is reopened after this, doubling while its
// preparation keeps failing.
const REOPEN_DELAY_MS = 1_000;
const MAX_REOPEN_DELAY_MS = 30_000;

export interface ChannelKeeperHooks<C extends Channel> {
  create(model: ChannelModel): Promise<C>;
  /** Declarations and consumers, on every new channel before it counts as open. */
  prepare(channel: C): Promise<void>;
  /** The channel is prepared and in use. */
  opened(channel: C): void;
  /** The channel in use closed (amqplib has already failed its unconfirmed messages). */
  lost(channel: C): void;
  /** A channel error or a failed preparation. */
  error(err: unknown): void;
}

/**
 * Keeps one amqplib channel of our own on golevelup's managed connection: opens
 * it on every (re)connect and, when the broker closes only the channel, opens
 * another on the same connection. The publisher and the delay agent each keep one.
 */
export class ChannelKeeper<C extends Channel> {
  private current: C | undefined;
  private closed = false;
  private reopenTimer: NodeJS.Timeout | undefined;
  private reopenDelay = REOPEN_DELAY_MS;

  constructor(
    private readonly manager: AmqpConnectionManager,
    private readonly hooks: ChannelKeeperHooks<C>,
  ) {
    manager.on('connect', this.onConnect);
    if (manager.connection) void this.open(manager.connection);
  }

  /** The prepared channel in use, if any. */
  get channel(): C | undefined {
    return this.current;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.manager.removeListener('connect', this.onConnect);
    clearTimeout(this.reopenTimer);
    const channel = this.current;
    this.current = undefined;
    // Bounded: a broker that has stopped answering never sends close-ok.
    await settlesWithin(channel?.close(), BROKER_ANSWER_WAIT_MS);
  }

  private readonly onConnect = ({ connection }: { connection: ChannelModel }): void => {
    void this.open(connection);
  };

  private async open(model: ChannelModel): Promise<void> {
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    let channel: C;
    try {
      channel = await this.hooks.create(model);
    } catch {
      return; // the connection went away meanwhile; its reconnect opens the next channel
    }
    // Without a listener a channel error would be raised on the whole connection.
    channel.on('error', (err: unknown) => this.hooks.error(err));
    channel.on('close', () => this.onClosed(channel, model));
    try {
      await this.hooks.prepare(channel);
      if (this.closed) throw new Error('closed while preparing');
    } catch (err) {
      if (!this.closed) {
        this.hooks.error(err);
        this.reopenDelay = Math.min(this.reopenDelay * 2, MAX_REOPEN_DELAY_MS);
      }
      await channel.close().catch(() => undefined); // onClosed retries, unless closed
      return;
    }
    this.reopenDelay = REOPEN_DELAY_MS;
    this.current = channel;
    this.hooks.opened(channel);
  }

  private onClosed(channel: C, model: ChannelModel): void {
    if (this.current === channel) {
      this.current = undefined;
      if (!this.closed) this.hooks.lost(channel);
    }
    // When only the channel went, open another on the same connection.
    // (When the connection went, the manager's next 'connect' opens one.)
    if (!this.closed && this.manager.connection === model && this.reopenTimer === undefined) {
      this.reopenTimer = setTimeout(() => {
        this.reopenTimer = undefined;
        if (!this.closed && !this.current && this.manager.connection === model) void this.open(model);
      }, this.reopenDelay);
    }
  }
}

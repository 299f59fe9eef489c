import { Injectable, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { MoEventsService } from '../publishing/mo-events.service';
import { MoOutboxRelay } from '../outbox/outbox-relay';
import { MoAmqpRuntime } from '../runtime/mo-amqp-runtime';

/** What `isHealthy` returns: terminus's `HealthIndicatorResult`, written out so terminus stays optional. */
export type MoAmqpHealthResult<Key extends string = string> = Record<
  Key,
  { status: 'up' | 'down'; [detail: string]: unknown }
>;

interface HealthIndicatorServiceLike {
  check(key: string): { up(data: object): unknown; down(data: object): unknown };
}

/**
 * A `@nestjs/terminus` health indicator (terminus is an optional peer: install
 * it to use this). Down while AMQP is enabled and no channel to the broker is
 * open (`brokerError` then says why: the last connect error or refusal), or while
 * the outbox relay cannot reach PostgreSQL; the details give the spool's depth and
 * the age of its oldest event, and the relay's state.
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.amqp.isHealthy('amqp')]); }
 * ```
 */
@Injectable()
export class MoAmqpHealthIndicator {
  /** @internal Nest builds it (the outbox relay is not public): inject it beside terminus's `HealthCheckService`. */
  constructor(
    private readonly events: MoEventsService,
    private readonly runtime: MoAmqpRuntime,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly relay?: MoOutboxRelay,
  ) {}

  async isHealthy<Key extends string = 'amqp'>(key: Key = 'amqp' as Key): Promise<MoAmqpHealthResult<Key>> {
    const indicator = this.healthIndicatorService().check(key);
    const spool = this.events.spoolStats;
    const details = {
      enabled: this.events.enabled,
      connected: this.events.connected,
      ...(this.runtime.brokerError !== undefined && { brokerError: this.runtime.brokerError }),
      ...(spool && {
        spooled: spool.records,
        spoolBytes: spool.bytes,
        oldestSpooledSecondsAgo:
          spool.oldestSpooledAt === undefined ? null : Math.round((Date.now() - spool.oldestSpooledAt) / 1000),
      }),
    };
    const relay = this.relay?.status;
    if (relay)
      Object.assign(details, { outboxDatabaseReachable: relay.databaseReachable, outboxRelaying: relay.running });
    // The database of the outbox down: transactions that produce events fail, so the app is not healthy.
    const healthy = (!this.events.enabled || this.events.connected) && (relay?.databaseReachable ?? true);
    return (healthy ? indicator.up(details) : indicator.down(details)) as MoAmqpHealthResult<Key>;
  }

  private healthIndicatorService(): HealthIndicatorServiceLike {
    let terminus: { HealthIndicatorService: new () => HealthIndicatorServiceLike };
    try {
      // Required here, not imported above: apps without terminus never load it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      terminus = require('@nestjs/terminus');
    } catch {
      throw new Error('MoAmqpHealthIndicator needs @nestjs/terminus: npm install @nestjs/terminus');
    }
    try {
      return this.moduleRef.get(terminus.HealthIndicatorService, { strict: false });
    } catch {
      return new terminus.HealthIndicatorService(); // stateless: TerminusModule need not be imported
    }
  }
}

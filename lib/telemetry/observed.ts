import type { MoEventCounters, MoSpoolStats } from '../runtime/mo-amqp-stats';
import { observe, outcomeValues } from './metrics';

/** What the runtime shows the meter: its counters and its spool. */
export interface RuntimeView {
  readonly counters: MoEventCounters;
  readonly spoolStats: MoSpoolStats | undefined;
}

/**
 * The runtime's counters as `mo_amqp.events{mo_amqp.outcome}` and its spool as
 * `mo_amqp.spool.*`, read at each collection. Returns what removes them.
 */
export function observeRuntime(view: RuntimeView): () => void {
  return observe([
    {
      name: 'mo_amqp.events',
      unit: '{event}',
      description: 'MO events of this process by outcome (published, confirmed, spooled, failed, retried, …)',
      kind: 'counter',
      read: () => outcomeValues(view.counters),
    },
    {
      name: 'mo_amqp.spool.size',
      unit: 'By',
      description: 'Bytes the spool holds (events waiting for the broker)',
      kind: 'updowncounter',
      read: () => (view.spoolStats ? [[view.spoolStats.bytes, {}]] : []),
    },
    {
      name: 'mo_amqp.spool.events',
      unit: '{event}',
      description: 'Events waiting in the spool',
      kind: 'updowncounter',
      read: () => (view.spoolStats ? [[view.spoolStats.records, {}]] : []),
    },
    {
      name: 'mo_amqp.spool.oldest_age',
      unit: 's',
      description: 'How long the oldest event in the spool has waited (0 when none waits)',
      kind: 'gauge',
      read: () => {
        const stats = view.spoolStats;
        if (!stats) return [];
        const oldest = stats.oldestSpooledAt;
        return [[oldest === undefined ? 0 : Math.max(0, Date.now() - oldest) / 1000, {}]];
      },
    },
  ]);
}

/** The delay agent's counts as `mo_amqp.delay.messages{mo_amqp.outcome}` and what it holds now. */
export function observeDelayAgent(stats: () => { readonly holding: number } & object): () => void {
  return observe([
    {
      name: 'mo_amqp.delay.messages',
      unit: '{message}',
      description: 'Messages the delay agent passed on, by outcome (forwarded, parked, laddered, dead_lettered)',
      kind: 'counter',
      read: () => {
        const { holding: _holding, ...counts } = stats();
        return outcomeValues(counts);
      },
    },
    {
      name: 'mo_amqp.delay.held',
      unit: '{message}',
      description: 'Messages the delay agent holds in memory until their second',
      kind: 'updowncounter',
      read: () => [[stats().holding, {}]],
    },
  ]);
}

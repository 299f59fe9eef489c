import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfirmPublisher } from '../../lib/runtime/confirm-publisher';
import { SpooledPublisher } from '../../lib/runtime/spooled-publisher';
import { DiskSpool } from '../../lib/spool/disk-spool';
import { until } from '../support/until';

/** A publisher that is connected and confirms everything at once, remembering what it sent. */
function fakePublisher(sent: string[]): ConfirmPublisher {
  return {
    ready: true,
    size: 0,
    publish: async (_exchange: string, _key: string, _content: Buffer, properties: { messageId?: string }) => {
      sent.push(String(properties.messageId));
    },
    assertExchange: async () => undefined,
    whenIdle: async () => undefined,
    close: async () => undefined,
  } as unknown as ConfirmPublisher;
}

describe('SpooledPublisher', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'spooled-publisher-spec-'));
  });

  afterEach(() => {
    jest.useRealTimers();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('logs a spool it cannot read and tries again 2 s later, not before, instead of an unhandled rejection', async () => {
    const errors: string[] = [];
    const sent: string[] = [];
    const left = new DiskSpool(dir, 1_000_000);
    await left.append({
      exchange: 'os2mo',
      routingKey: 'employee.it.create',
      content: Buffer.from('{}'),
      properties: { messageId: 'kept' },
    });
    await left.close();
    const spool = new DiskSpool(dir, 1_000_000);
    let reads = 0;
    const take = spool.takeSegments.bind(spool);
    spool.takeSegments = async () => {
      // The first read fails; called synchronously when a drain starts, so `reads` counts drains.
      if (reads++ === 0) throw new Error('EIO: i/o error, scandir');
      return take();
    };
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const outbox = new SpooledPublisher(fakePublisher(sent), spool, 10, {
      warn: () => undefined,
      error: (m) => errors.push(m),
    });
    outbox.kick();
    await jest.advanceTimersByTimeAsync(0);
    expect(errors).toEqual(['Reading the spool failed (EIO: i/o error, scandir); retrying']);
    expect(reads).toBe(1);
    await jest.advanceTimersByTimeAsync(1_999);
    expect(reads).toBe(1); // not before 2 s
    await jest.advanceTimersByTimeAsync(1);
    expect(reads).toBe(2); // at 2 s
    // The second drain reads the real files: real timers for the disk's time.
    jest.useRealTimers();
    await until(() => sent.length > 0, 'the spooled event to be sent again');
    expect(sent).toEqual(['kept']);
    expect(errors).toHaveLength(1);
    await outbox.close(100);
  });
});

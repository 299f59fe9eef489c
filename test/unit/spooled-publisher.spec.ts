import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfirmPublisher } from '../../lib/runtime/confirm-publisher';
import { SpooledPublisher } from '../../lib/runtime/spooled-publisher';
import { DiskSpool } from '../../lib/spool/disk-spool';

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

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('SpooledPublisher', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'spooled-publisher-spec-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('logs a spool it cannot read and tries again, instead of an unhandled rejection', async () => {
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
    let failures = 1;
    const take = spool.takeSegments.bind(spool);
    spool.takeSegments = async () => {
      if (failures-- > 0) throw new Error('EIO: i/o error, scandir');
      return take();
    };
    const outbox = new SpooledPublisher(fakePublisher(sent), spool, 10, { warn: () => undefined, error: (m) => errors.push(m) });
    outbox.kick();
    await until(() => sent.length > 0); // the retry comes 2 s later
    expect(errors).toEqual(['Reading the spool failed (EIO: i/o error, scandir); retrying']);
    expect(sent).toEqual(['kept']);
    await outbox.close(100);
  });
});

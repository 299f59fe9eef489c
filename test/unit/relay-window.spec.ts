import { relayWindow } from '../../lib/outbox/relay-window';
import type { OutboxRow } from '../../lib/outbox/outbox-sql';

const row = (id: number): OutboxRow => ({
  id: String(id),
  message_id: `00000000-0000-4000-8000-${String(id).padStart(12, '0')}`,
  exchange: 'os2mo',
  routing_key: 'employee.engagement.create',
  body: '{}',
  headers: null,
  published_at: '0',
});

/** A table of `count` rows read `chunk` at a time, a broker that confirms on demand, and what happened. */
function backlog(count: number, chunk: number) {
  const rows = Array.from({ length: count }, (_, i) => row(i + 1));
  const deleted: string[] = [];
  const published: string[] = [];
  const waiting: { id: string; confirm(): void; refuse(err: Error): void }[] = [];
  let unsettledMax = 0;
  let removedCount = 0;
  const unsettled = () => published.length - deleted.length;
  return {
    deleted,
    published,
    waiting,
    get unsettledMax() {
      return unsettledMax;
    },
    get removedCount() {
      return removedCount;
    },
    steps: {
      chunk,
      goOn: (_taken: number) => true,
      stopped: () => false,
      load: async (after: string | undefined) => rows.filter((r) => Number(r.id) > Number(after ?? 0)).slice(0, chunk),
      publish: (r: OutboxRow) =>
        new Promise<void>((confirm, refuse) => {
          published.push(r.id);
          unsettledMax = Math.max(unsettledMax, unsettled());
          waiting.push({ id: r.id, confirm, refuse });
        }),
      remove: async (ids: string[]) => {
        deleted.push(...ids);
        return ids.length;
      },
      removed: (count: number) => void (removedCount += count),
      lost: (): Error | undefined => undefined,
    },
  };
}

/** Confirms what waits, oldest first, a few at a time, until the pass ends. */
async function confirmAll(b: ReturnType<typeof backlog>, pass: Promise<unknown>): Promise<void> {
  let done = false;
  void pass.finally(() => (done = true)).catch(() => undefined);
  while (!done) {
    for (const w of b.waiting.splice(0, 7)) w.confirm();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('relayWindow', () => {
  it('sends the whole backlog in order, chunk after chunk, never more than the window unsettled', async () => {
    const b = backlog(1_000, 64);
    const pass = relayWindow(20, b.steps);
    await confirmAll(b, pass);
    await expect(pass).resolves.toBe(false);
    expect(b.published).toEqual(Array.from({ length: 1_000 }, (_, i) => String(i + 1)));
    expect(b.deleted.sort((x, y) => Number(x) - Number(y))).toEqual(b.published);
    // What a kill at the worst moment would leave to be sent again.
    expect(b.unsettledMax).toBe(20);
    expect(b.removedCount).toBe(1_000);
  });

  it('counts what the deletes removed, not what they asked for (a row another relay deleted counts there)', async () => {
    const b = backlog(40, 40);
    b.steps.remove = async (ids: string[]) => {
      b.deleted.push(...ids);
      return ids.filter((id) => Number(id) % 2 === 0).length;
    };
    const pass = relayWindow(10, b.steps);
    await confirmAll(b, pass);
    await pass;
    expect(b.removedCount).toBe(20);
  });

  it('a failed read ahead stops the chunk in hand at once, not after all of it was sent', async () => {
    const b = backlog(1_000, 500);
    const load = b.steps.load;
    b.steps.load = async (after: string | undefined) => {
      if (after !== undefined) throw new Error('connection terminated');
      return load(after);
    };
    const pass = relayWindow(20, b.steps);
    await confirmAll(b, pass);
    await expect(pass).rejects.toThrow('connection terminated');
    expect(b.published.length).toBeLessThanOrEqual(20);
  });

  it('stops publishing once the reading connection (holding the lock) broke', async () => {
    const b = backlog(200, 200);
    const connection: { error?: Error } = {};
    b.steps.lost = () => connection.error;
    const pass = relayWindow(10, b.steps);
    await new Promise((resolve) => setImmediate(resolve));
    connection.error = new Error('server closed the connection');
    await confirmAll(b, pass);
    await expect(pass).rejects.toThrow('server closed the connection');
    expect(b.published).toHaveLength(10);
    expect(b.deleted).toHaveLength(10);
  });

  it('once the relay stops, nothing more is published, not even a chunk read ahead', async () => {
    const b = backlog(1_000, 100);
    let stopping = false;
    b.steps.stopped = () => stopping;
    const pass = relayWindow(100, b.steps);
    await new Promise((resolve) => setImmediate(resolve));
    stopping = true;
    await confirmAll(b, pass);
    await pass;
    expect(b.published).toHaveLength(100);
  });

  it('a row not yet deleted holds its place in the window: a slow delete holds publishing back', async () => {
    const b = backlog(50, 50);
    let hold = true;
    let release: () => void = () => undefined;
    b.steps.remove = async (ids: string[]) => {
      if (hold) await new Promise<void>((resolve) => (release = resolve));
      b.deleted.push(...ids);
      return ids.length;
    };
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const pass = relayWindow(10, b.steps);
    await tick();
    for (const w of b.waiting.splice(0)) w.confirm();
    await tick();
    await tick();
    // All 10 confirmed, their delete still running: nothing more is published.
    expect(b.published).toHaveLength(10);
    hold = false;
    release();
    await confirmAll(b, pass);
    await pass;
    expect(b.published).toHaveLength(50);
    expect(b.deleted).toHaveLength(50);
  });

  it('stops publishing at a refused publish, still deletes what was confirmed, and rejects with the failure', async () => {
    const b = backlog(100, 100);
    const pass = relayWindow(10, b.steps);
    await new Promise((resolve) => setImmediate(resolve));
    const [first, second, ...rest] = b.waiting.splice(0);
    first.confirm();
    second.refuse(new Error('broker gone'));
    for (const w of rest) w.confirm();
    await expect(pass).rejects.toThrow('broker gone');
    expect(b.published).toHaveLength(10);
    expect(b.deleted).not.toContain('2');
    expect(b.deleted).toHaveLength(9);
  });

  it('a failed delete ends the pass: the rows stay for the next one (sent again, never lost)', async () => {
    const b = backlog(30, 30);
    b.steps.remove = async () => {
      throw new Error('permission denied for table');
    };
    const pass = relayWindow(10, b.steps);
    await confirmAll(b, pass);
    await expect(pass).rejects.toThrow('permission denied');
    expect(b.published.length).toBeLessThanOrEqual(10);
  });

  it('reports a full last chunk (more may wait) and stops reading when told to', async () => {
    const b = backlog(300, 100);
    b.steps.goOn = (taken: number) => taken < 200;
    const pass = relayWindow(50, b.steps);
    await confirmAll(b, pass);
    await expect(pass).resolves.toBe(true);
    expect(b.published).toHaveLength(200);
  });
});

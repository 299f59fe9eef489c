import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BROKER_URL, TestBroker } from '../support/broker';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);

describe('the built package, required from the repository root', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  });

  it('exports the public API', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pkg = require(ROOT);
    for (const name of [
      'MoAmqpModule',
      'MoEventsService',
      'MoEventValidationError',
      'MoPublishError',
      'moAmqpConfig',
    ]) {
      expect(pkg[name]).toBeDefined();
    }
    expect(pkg.MO_OBJECT_TYPES).toHaveLength(10);
  });

  it('publishes what a plain AMQP client bound #.#.# on exchange os2mo receives, as the contract says', async () => {
    const broker = await TestBroker.connect();
    const collector = await broker.collect('os2mo', '#.#.#');
    const uuid = randomUUID();
    const objectUuid = randomUUID();

    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'test', 'fixtures', 'package-user.js'), uuid, objectUuid],
      {
        env: { ...process.env, ENABLE_AMQP: 'True', AMQP__URL: BROKER_URL, AMQP__EXCHANGE: '' },
        timeout: 20_000,
      },
    );
    const results = JSON.parse(stdout);
    expect(results.map((r: { status: string }) => r.status)).toEqual(['confirmed', 'confirmed']);

    // os2mo is shared with any other publisher on this broker: look at ours only.
    const deadline = Date.now() + 5_000;
    const ours = () => collector.messages.filter((m) => m.content.toString().includes(uuid));
    while (ours().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [first, second] = ours();
    expect(first.fields).toMatchObject({ exchange: 'os2mo', routingKey: 'employee.engagement.create' });
    expect(first.content.toString()).toBe(`{"uuid": "${uuid}", "time": "2019-03-24T13:02:15.132000+00:00"}`);
    expect(second.fields).toMatchObject({ exchange: 'os2mo', routingKey: 'org_unit.engagement.create' });
    expect(second.content.toString()).toBe(
      `{"uuid": "${uuid}", "time": "2021-07-27T00:00:00+02:00", "object_uuid": "${objectUuid}"}`,
    );
    for (const [message, result] of [
      [first, results[0]],
      [second, results[1]],
    ]) {
      expect(message.properties).toMatchObject({
        deliveryMode: 2,
        contentType: 'application/json',
        messageId: result.messageId,
      });
      expect(typeof message.properties.timestamp).toBe('number');
    }
    // Not broker.close(): that would delete os2mo, which is not this test's alone.
    await broker.connection.close();
  });
});

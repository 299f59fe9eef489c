import { RabbitSubscribe } from '@golevelup/nestjs-rabbitmq';
import { Injectable } from '@nestjs/common';
import { TestingModule } from '@nestjs/testing';
import { MoEvent, MoEventsService } from '../../lib';
import { bootApp } from '../support/app';
import { BROKER_URL, TestBroker, uniqueName } from '../support/broker';
import { CapturingLogger } from '../support/capturing-logger';

const PERSON = 'c390b9a2-7202-48e6-972b-ce36a90065c4';

describe('@MoEvent against RabbitMQ', () => {
  let broker: TestBroker;
  let app: TestingModule | undefined;

  beforeEach(async () => {
    broker = await TestBroker.connect();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await broker.close();
  });

  it('publishes from a @RabbitSubscribe handler too, which golevelup finds on the prototype', async () => {
    const exchange = uniqueName('handler');
    const commands = uniqueName('commands');
    const collector = await broker.collect(exchange, 'employee.#');
    await broker.channel.assertExchange(commands, 'topic', { durable: false, autoDelete: true });

    @Injectable()
    class LeaveImporter {
      @RabbitSubscribe({ exchange: commands, routingKey: 'import', queueOptions: { exclusive: true } })
      @MoEvent('employee', 'leave', 'create', { uuid: (_result: void, command: { person: string }) => command.person })
      async handle(_command: { person: string }): Promise<void> {}
    }

    app = await bootApp(
      { enabled: true, url: BROKER_URL, exchange },
      { providers: [LeaveImporter], logger: new CapturingLogger() },
    );
    broker.channel.publish(commands, 'import', Buffer.from(JSON.stringify({ person: PERSON })));
    const [message] = await collector.waitFor(1);
    expect(message.fields.routingKey).toBe('employee.leave.create');
    expect(JSON.parse(message.content.toString()).uuid).toBe(PERSON);
  });

  it('returns the business result, and logs and counts the event, when publishing is refused', async () => {
    const exchange = uniqueName('slow');
    @Injectable()
    class People {
      @MoEvent('employee', 'employee', 'update')
      async rename(uuid: string) {
        return { uuid, name: 'renamed' };
      }
    }
    const logger = new CapturingLogger();
    broker.track(exchange);
    app = await bootApp(
      // No spool: the second publish is refused at once instead of spooled.
      { enabled: true, url: BROKER_URL, exchange, maxInFlight: 1, publishTimeoutMs: 1_000, spoolDir: 'off' },
      { providers: [People], logger },
    );
    // Fill the one in-flight slot so the decorated call's publish is refused at once.
    const events = app.get(MoEventsService);
    const blocking = events.publish('employee', 'employee', 'update', PERSON);
    await expect(app.get(People).rename(PERSON)).resolves.toEqual({ uuid: PERSON, name: 'renamed' });
    await blocking;
    expect(logger.text).toContain(
      'ERROR @MoEvent employee.employee.update on People.rename was not published: MoPublishError:',
    );
    expect(events.counters).toMatchObject({ published: 2, confirmed: 1, failed: 1, decoratorFailures: 1 });
  });
});

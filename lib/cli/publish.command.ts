import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { TLS_VERIFY_OFF_WARNING } from '../config/tls';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoPublishError } from '../errors/mo-publish.error';
import { buildMoEvent } from '../events/mo-event';
import { MoActionOf, MoObjectTypeOf, MoPublishVocabulary, MoService } from '../events/vocabulary';
import { MoAmqpModule } from '../mo-amqp.module';
import { MoEventsService } from '../publishing/mo-events.service';
import { parseArgs } from 'node:util';
import { CliIo } from './cli-io';
import { messageOf } from '../util/error-message';

const HELP = `Usage: mo-amqp publish <routing-key> <uuid> [--time ISO] [--object-uuid UUID]

Publishes one MO event exactly as MoEventsService does (persistent, confirmed)
and prints its message id. AMQP is used whatever ENABLE_AMQP says. It never
spools: a one-shot command has no later start to send a spool from, so exit 0
means RabbitMQ confirmed the event. The words follow AMQP__VOCABULARY: seed
(default; create, update, delete) or os2mo (create, edit, terminate, refresh;
kle and owner; --object-uuid required).

  <routing-key>        <service>.<object-type>.<action>, e.g. employee.engagement.create
  <uuid>               the affected employee's or organisation unit's UUID
  --time ISO           when the change is effective (ISO 8601); default now
  --object-uuid UUID   the changed object's own UUID (adds object_uuid)
  --exchange NAME      default: AMQP__EXCHANGE, else os2mo
  -h, --help           this text`;

/** `mo-amqp publish`: 0 once confirmed, 1 when the broker fails, 2 for bad arguments. */
export async function publishCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      time: { type: 'string' },
      'object-uuid': { type: 'string' },
      exchange: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (positionals.length !== 2) {
    io.err(`mo-amqp publish: needs a routing key and a UUID, got ${positionals.length} argument(s); see --help`);
    return 2;
  }
  const [routingKey, uuid] = positionals;
  const words = routingKey.split('.');
  if (words.length !== 3) {
    io.err(`mo-amqp publish: routing key "${routingKey}" must be <service>.<object-type>.<action> (three words)`);
    return 2;
  }
  const fromEnv = loadMoAmqpOptionsFromEnv(io.env);
  const exchange = values.exchange ?? fromEnv.exchange;
  // Checked by buildMoEvent below, against the configured vocabulary.
  const [service, objectType, action] = words as [
    MoService,
    MoObjectTypeOf<MoPublishVocabulary>,
    MoActionOf<MoPublishVocabulary>,
  ];
  const options = {
    ...(values.time !== undefined && { time: values.time }),
    ...(values['object-uuid'] !== undefined && { objectUuid: values['object-uuid'] }),
  };
  try {
    // Bad arguments are reported without a broker: the same checks publish() makes.
    buildMoEvent(service, objectType, action, uuid, options, fromEnv);
  } catch (err) {
    io.err(`mo-amqp publish: ${messageOf(err)}`);
    return 2;
  }

  // Nest's logger is off here, so the module's warning would go unseen.
  if (!fromEnv.tlsVerify) io.err(`mo-amqp publish: warning: ${TLS_VERIFY_OFF_WARNING}`);
  class PublishModule {}
  Module({ imports: [MoAmqpModule.forRoot({ ...fromEnv, enabled: true, exchange, spoolDir: 'off' })] })(PublishModule);
  let app;
  try {
    app = await NestFactory.createApplicationContext(PublishModule, { logger: false, abortOnError: false });
  } catch (err) {
    io.err(`mo-amqp publish: ${messageOf(err)}`);
    return err instanceof MoAmqpConnectionError ? 1 : 2;
  }
  try {
    const result = await app.get(MoEventsService).publish(service, objectType, action, uuid, options);
    io.out(`${result.status} [${result.routingKey}] ${result.body} message_id=${result.messageId}`);
    return 0;
  } catch (err) {
    if (err instanceof MoPublishError) {
      io.err(`mo-amqp publish: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await app.close().catch(() => undefined);
  }
}

import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { TLS_VERIFY_OFF_WARNING } from '../config/tls';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoPublishError } from '../errors/mo-publish.error';
import { buildMoChange } from '../events/mo-change';
import { buildMoEvent } from '../events/mo-event';
import {
  MO_CHANGE_OBJECT_TYPES,
  MoActionOf,
  MoChangeObjectType,
  MoObjectTypeOf,
  MoPublishVocabulary,
  MoService,
} from '../events/vocabulary';
import { MoPublishResult } from '../publishing/mo-publish-result';
import { MoAmqpModule } from '../mo-amqp.module';
import { MoEventsService } from '../publishing/mo-events.service';
import { parseArgs } from 'node:util';
import { CliIo } from './cli-io';
import { messageOf } from '../util/error-message';

/** The words joined by ", ", in lines no longer than `width`. */
function wrapped(words: readonly string[], width: number): string {
  const lines = [''];
  for (const [i, word] of words.entries()) {
    const piece = i < words.length - 1 ? `${word},` : word;
    const line = lines[lines.length - 1];
    if (line === '') lines[lines.length - 1] = piece;
    else if (line.length + 1 + piece.length < width) lines[lines.length - 1] = `${line} ${piece}`;
    else lines.push(piece);
  }
  return lines.join('\n');
}

const HELP = `Usage: mo-amqp publish <routing-key> <uuid> [--time ISO] [--object-uuid UUID]
       mo-amqp publish <object-type> <uuid>

Publishes one message exactly as MoEventsService does (persistent, confirmed)
and prints its message id. AMQP is used whatever ENABLE_AMQP says. It never
spools: a one-shot command has no later start to send a spool from, so exit 0
means RabbitMQ confirmed it. The routing key says which of two shapes:

A legacy MO event: three words, <service>.<object-type>.<action>, e.g.
employee.engagement.create, body {"uuid": …, "time": …}, as publish() sends.
The words follow AMQP__VOCABULARY: seed (default; create, update, delete) or
os2mo (create, edit, terminate, refresh; kle, owner and rolebinding;
--object-uuid required).

An AMQP-subsystem message (OS2mo 2023-): one word, the object type, e.g.
engagement, body the UUID as a JSON string ("c390b9a2-…", quotes included), as
publishChange() sends. It has no time and no object_uuid. The object types:
${wrapped(MO_CHANGE_OBJECT_TYPES, 78)}.

  <routing-key>        <service>.<object-type>.<action>, e.g. employee.engagement.create
  <object-type>        one word, e.g. engagement (an AMQP-subsystem message)
  <uuid>               legacy: the affected employee's or organisation unit's UUID;
                       subsystem: the changed object's own UUID
  --time ISO           legacy only: when the change is effective (ISO 8601); default now
  --object-uuid UUID   legacy only: the changed object's own UUID (adds object_uuid)
  --exchange NAME      default: AMQP__EXCHANGE, else os2mo
  -h, --help           this text`;

/**
 * `mo-amqp publish`: a legacy event (three-word routing key) or an AMQP-subsystem
 * message (one word). 0 once confirmed, 1 when the broker fails, 2 for bad arguments.
 */
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
  const fromEnv = loadMoAmqpOptionsFromEnv(io.env);
  const exchange = values.exchange ?? fromEnv.exchange;
  let send: (events: MoEventsService) => Promise<MoPublishResult<string>>;
  if (words.length === 1) {
    // An AMQP-subsystem message: "this object may have changed", nothing more.
    const given = (['time', 'object-uuid'] as const).filter((name) => values[name] !== undefined);
    if (given.length > 0) {
      io.err(
        `mo-amqp publish: ${given.map((name) => `--${name}`).join(' and ')} with the one-word routing key ` +
          `"${routingKey}": an AMQP-subsystem message has no time and no object_uuid (its body is the UUID alone); ` +
          'use a three-word routing key for a legacy event',
      );
      return 2;
    }
    const objectType = routingKey as MoChangeObjectType; // Checked by buildMoChange below.
    try {
      // Bad arguments are reported without a broker: the same checks publishChange() makes.
      buildMoChange(objectType, uuid);
    } catch (err) {
      io.err(`mo-amqp publish: ${messageOf(err)}`);
      return 2;
    }
    send = (events) => events.publishChange(objectType, uuid);
  } else if (words.length === 3) {
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
    send = (events) => events.publish(service, objectType, action, uuid, options);
  } else {
    io.err(
      `mo-amqp publish: routing key "${routingKey}" has ${words.length} words; it must have three words ` +
        '(a legacy event) or one (an AMQP-subsystem message): <service>.<object-type>.<action>, ' +
        'e.g. employee.engagement.create, or <object-type>, e.g. engagement',
    );
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
    const result = await send(app.get(MoEventsService));
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

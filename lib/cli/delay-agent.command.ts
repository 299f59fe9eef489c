import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { parseArgs } from 'node:util';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { loadMoDelayAgentOptionsFromEnv } from '../delay/mo-delay-agent.config';
import { MoDelayAgentModule } from '../delay/mo-delay-agent.module';
import { MoAmqpConnectionError } from '../errors/mo-amqp-connection.error';
import { MoAmqpModule } from '../mo-amqp.module';
import { CliIo } from './cli-io';
import { messageOf } from '../util/error-message';

const HELP = `Usage: mo-amqp delay-agent

Runs the delay agent until Ctrl-C (or SIGTERM): every message of the events
exchange (AMQP__EXCHANGE) is republished, identical, on the delayed exchange
(AMQP__DELAYED_EXCHANGE) once its time is due. Pending messages wait in
RabbitMQ (those due within AMQP__DELAY_HOLD_MS in the hold queue of their
second), so stopping it loses nothing; several can run side by side.
AMQP is used whatever ENABLE_AMQP says. Also reads AMQP__DELAY_PREFIX,
AMQP__DELAY_QUEUE_TYPE, AMQP__DELAY_PREFETCH and AMQP__DELAY_HOLD_MS.

Options:
  -h, --help   this text`;

/** `mo-amqp delay-agent`: 0 after Ctrl-C, 1 when the broker fails, 2 for bad configuration. */
export async function delayAgentCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const amqp = loadMoAmqpOptionsFromEnv(io.env);
  const agent = loadMoDelayAgentOptionsFromEnv(io.env);

  class DelayAgentModule {}
  Module({
    imports: [MoAmqpModule.forRoot({ ...amqp, enabled: true, outbox: 'off' }), MoDelayAgentModule.forRoot(agent)],
  })(DelayAgentModule);
  let app;
  try {
    app = await NestFactory.createApplicationContext(DelayAgentModule, { abortOnError: false });
  } catch (err) {
    io.err(`mo-amqp delay-agent: ${messageOf(err)}`);
    return err instanceof MoAmqpConnectionError ? 1 : 2;
  }
  await io.stopped;
  await app.close();
  return 0;
}

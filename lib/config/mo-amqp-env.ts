import { MoAmqpModuleOptions, ResolvedMoAmqpOptions } from './mo-amqp-options.interface';
import { MO_AMQP_FIELDS, allowedFor, resolveMoAmqpOptions, showReceived } from './mo-amqp-options.schema';
import { readEnv } from './option-table';

/**
 * Reads `ENABLE_AMQP` and the `AMQP__*` variables into validated options.
 * An unset or empty variable takes its default. Throws `MoAmqpConfigError`
 * naming each bad variable, its value (password masked) and what is allowed.
 */
export function loadMoAmqpOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedMoAmqpOptions {
  const { values, unread } = readEnv(MO_AMQP_FIELDS, env);
  // A variable that is not even of its kind (ENABLE_AMQP=maybe) is named first, and takes its default meanwhile.
  const problems = (Object.keys(unread) as (keyof MoAmqpModuleOptions)[]).map((key) => ({
    name: MO_AMQP_FIELDS[key].env,
    received: showReceived(key, unread[key]),
    allowed: allowedFor(key, unread[key]),
  }));
  return resolveMoAmqpOptions(values as MoAmqpModuleOptions, 'env', problems);
}

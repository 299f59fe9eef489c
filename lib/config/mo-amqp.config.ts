import { registerAs } from '@nestjs/config';
import { loadMoAmqpOptionsFromEnv } from './mo-amqp-env';

/**
 * The `moAmqp` configuration namespace: the environment variables, validated.
 * `MoAmqpModule.forRootAsync()` uses it when given no arguments; inject
 * `moAmqpConfig.KEY` to build on it:
 *
 * ```ts
 * MoAmqpModule.forRootAsync({
 *   imports: [ConfigModule.forFeature(moAmqpConfig)],
 *   inject: [moAmqpConfig.KEY],
 *   useFactory: (env: ResolvedMoAmqpOptions) => ({ ...env, exchange: 'test' }),
 * })
 * ```
 */
export const moAmqpConfig = registerAs('moAmqp', () => loadMoAmqpOptionsFromEnv(process.env));

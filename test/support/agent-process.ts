import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { BROKER_URL } from './broker';

const CLI = join(__dirname, '..', '..', 'dist', 'cli', 'mo-amqp.js');

/** Starts `mo-amqp delay-agent` in its own process; resolves once it consumes. */
export async function startAgentProcess(
  names: {
    exchange: string;
    delayedExchange: string;
    prefix: string;
  },
  env: NodeJS.ProcessEnv = {},
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'delay-agent'], {
    env: {
      ...process.env,
      AMQP__URL: BROKER_URL,
      AMQP__EXCHANGE: names.exchange,
      AMQP__DELAYED_EXCHANGE: names.delayedExchange,
      AMQP__DELAY_PREFIX: names.prefix,
      NO_COLOR: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('Delaying events from') && resolve());
    child.on('exit', (code) => reject(new Error(`the agent exited with ${code}`)));
  });
  return child;
}

/** Stops a child process with `signal` and waits until it is gone (at once if it already is). */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill(signal);
  await exited;
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BROKER, BROKER_URL, uniqueName } from './broker';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'rabbitmq.sh');

/** Runs rabbitmqctl against the local test broker of the BROKER version (`scripts/rabbitmq.sh ctl`). */
export function rabbitmqctl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('bash', [SCRIPT, 'ctl', ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`rabbitmqctl ${args[0]} failed: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

/** A RabbitMQ user of its own, with these permissions on vhost "/" (regular expressions, as rabbitmqctl takes them). */
export interface TestUser {
  readonly name: string;
  readonly password: string;
  /** The test broker's URL, logging in as this user. */
  readonly url: string;
  /** Replaces the user's permissions. */
  permit(permissions: Permissions): Promise<void>;
  remove(): Promise<void>;
}

export interface Permissions {
  readonly configure: string;
  readonly write: string;
  readonly read: string;
}

export async function addUser(permissions: Permissions): Promise<TestUser> {
  const name = uniqueName('user');
  const password = randomBytes(12).toString('hex');
  await rabbitmqctl('add_user', name, password);
  const permit = async ({ configure, write, read }: Permissions) =>
    void (await rabbitmqctl('set_permissions', '-p', '/', name, configure, write, read));
  await permit(permissions);
  const url = new URL(BROKER_URL);
  url.username = name;
  url.password = password;
  return {
    name,
    password,
    url: url.toString(),
    permit,
    remove: async () => void (await rabbitmqctl('delete_user', name)),
  };
}

/**
 * Adds a user with a password any character may be in. Debian 12's rabbitmqctl
 * (3.10) passes its arguments through a shell, which would mangle a password with
 * quotes, $ or `, so there it is given on stdin; a 4.x node's rabbitmqctl is run
 * without a shell, and its CLI (on Erlang 27 and 29) fails to read a password from
 * stdin that is not a terminal, so there it is an argument.
 */
export function addUserReadingPassword(name: string, password: string): Promise<void> {
  const args = BROKER.chroot ? ['add_user', name, password] : ['add_user', name];
  return new Promise((resolve, reject) => {
    const child = execFile('bash', [SCRIPT, 'ctl', ...args], { timeout: 60_000 }, (err, _stdout, stderr) =>
      err
        ? reject(new Error(`rabbitmqctl add_user failed: ${err.message.replace(password, '***')}\n${stderr}`))
        : resolve(),
    );
    child.stdin?.end(BROKER.chroot ? '' : password);
  });
}

// A bench child process spoken to one request at a time over IPC: each message sent
// is answered by one message back (`{ error }` rejects). Shared by the publish and
// outbox contenders, each of which runs in a process of its own.
const { fork } = require('node:child_process');

/**
 * Forks `file` with `args` (and `env` added; `execArgv`, Node's own options such as
 * `--require`, after this process's) and resolves once it has sent its first
 * message. Resolves with `{ ready, request(message), close() }`; `close()` sends
 * `{ close: true }` and waits for the exit.
 */
async function forkChild(file, args, label, env = {}, execArgv = []) {
  const child = fork(file, args, {
    env: { ...process.env, ...env },
    execArgv: [...process.execArgv, ...execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let waiting;
  let failure;
  child.on('message', (m) => {
    const w = waiting;
    waiting = undefined;
    if (m.error) w?.reject(new Error(`${label} (child ${child.pid}): ${m.error}`));
    else w?.resolve(m);
  });
  child.on('exit', (code, signal) => {
    failure = new Error(`${label} (child ${child.pid}) exited with ${signal ?? code}`);
    waiting?.reject(failure);
    waiting = undefined;
  });
  const request = (message) =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      waiting = { resolve, reject };
      if (message) child.send(message);
    });
  const ready = await request(undefined);
  const close = async () => {
    if (failure) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.send({ close: true });
    await exited;
  };
  return { ready, request, close };
}

module.exports = { forkChild };

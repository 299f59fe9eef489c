import type { ConfirmChannel } from 'amqplib';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { EXCHANGE_NAME } from '../config/amqp-rules';
import { loadMoAmqpOptionsFromEnv } from '../config/mo-amqp-env';
import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { explainExchangeRefusal, setUpExchange } from '../runtime/exchanges';
import { REFUSED_DIR } from '../spool/disk-spool';
import { writeSynced } from '../spool/spool-fs';
import { SpoolRecord, decodeSegment, encodeRecord } from '../spool/spool-record';
import {
  CliBroker,
  closeQuietly,
  connectCli,
  printable,
  publishConfirmed,
  quietChannel,
  quietConfirmChannel,
} from './cli-broker';
import { CliIo } from './cli-io';
import { entriesOf, spoolFilesIn, spoolStatus } from './spool-status';

const HELP = `Usage: mo-amqp spool <status|resend> [--dir PATH]

The spool directory (AMQP__SPOOL_DIR, default .mo-amqp-spool; see docs/operations.md).

  status   what each process's directory holds (segments, records, bytes, the oldest's
           age), whether its process is alive or it is abandoned (the next start adopts
           it), and what refused/ and damaged/ hold. Only reads.
  resend   sends the records in refused/ (set aside because RabbitMQ refused their
           exchange) once the cause is fixed: each exchange declared as the app does
           (AMQP__EXCHANGE_DURABLE, AMQP__DECLARE_EXCHANGES), each record published as
           recorded, with confirms; a file is deleted once all its records are
           confirmed, and rewritten with those refused again. Interrupted, a file's
           records go again on the next run (duplicates, never a loss). A file holding
           bytes that are no record is left as it is. Touches nothing else: the
           process directories are their holders' (or the next start's).

Options:
  --dir PATH   the spool directory; default AMQP__SPOOL_DIR
  -h, --help   this text

Exit codes: 0 done, 1 the broker failed or refused some records again (they stay in
refused/), 2 bad arguments or configuration (also: no such directory), 130 resend
stopped by Ctrl-C or SIGTERM.`;

/** A file in refused/ changed this recently may still be being written: resend waits until it is older. */
const SETTLE_MS = 2_000;

/** `mo-amqp spool status|resend`. */
export async function spoolCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const [action, ...rest] = positionals;
  if ((action !== 'status' && action !== 'resend') || rest.length > 0) {
    io.err(`mo-amqp spool: expected status or resend, got ${JSON.stringify(positionals.join(' '))}; see --help`);
    return 2;
  }
  const options = loadMoAmqpOptionsFromEnv(io.env);
  if (values.dir === undefined && options.spoolDir === 'off') {
    io.err(`mo-amqp spool ${action}: AMQP__SPOOL_DIR is off; name the directory with --dir PATH`);
    return 2;
  }
  const dir = path.resolve(values.dir ?? options.spoolDir);
  if ((await entriesOf(dir).catch(() => undefined)) === undefined) {
    io.err(`mo-amqp spool ${action}: ${dir} is no spool directory (it does not exist or cannot be read)`);
    return 2;
  }
  if (action === 'status') {
    await spoolStatus(dir, io);
    return 0;
  }
  return resend(dir, options, io);
}

async function resend(dir: string, options: ResolvedMoAmqpOptions, io: CliIo): Promise<number> {
  const label = 'mo-amqp spool resend';
  const files = await spoolFilesIn(path.join(dir, REFUSED_DIR));
  if (files.length === 0) {
    io.out(`${path.join(dir, REFUSED_DIR)} holds nothing to send`);
    return 0;
  }
  const open = await connectCli(options, io, label);
  if (typeof open === 'number') return open;
  let stopped = false;
  void io.stopped.then(() => (stopped = true));
  let failed = 0;
  let sent = 0;
  try {
    const channel = await quietConfirmChannel(open.connection);
    const exchanges = new Map<string, string | undefined>();
    for (const file of files) {
      if (stopped) {
        io.out(`stopped: sent ${sent} record(s); the files not yet done stay in ${REFUSED_DIR}/`);
        return 130;
      }
      const records = await readSettled(file, io, label);
      if (records === undefined) {
        failed++;
        continue;
      }
      for (const exchange of new Set(records.map((r) => r.exchange))) {
        if (!exchanges.has(exchange)) exchanges.set(exchange, await declare(open, exchange, options));
      }
      const keep = records.filter((r) => exchanges.get(r.exchange) !== undefined);
      const unsendable = await publishAll(
        channel,
        records.filter((r) => exchanges.get(r.exchange) === undefined),
      );
      keep.push(...unsendable);
      sent += records.length - keep.length;
      for (const [exchange, why] of exchanges) {
        const n = keep.filter((r) => r.exchange === exchange).length;
        if (why !== undefined && n > 0) io.err(`${label}: ${n} record(s) of ${file} stay: ${why}`);
      }
      if (unsendable.length > 0)
        io.err(`${label}: ${unsendable.length} record(s) of ${file} cannot be sent; they stay`);
      if (keep.length === 0) {
        await fs.promises.rm(file, { force: true });
        io.out(`sent ${records.length} record(s) of ${file}, and deleted it`);
      } else {
        failed++;
        await writeSynced(`${file}.tmp`, Buffer.concat(keep.map(encodeRecord)));
        await fs.promises.rename(`${file}.tmp`, file);
        io.out(`sent ${records.length - keep.length} record(s) of ${file}; ${keep.length} stay in it`);
      }
    }
    await channel.close();
  } catch (err) {
    const lost = await Promise.race([open.lost, Promise.resolve(undefined)]);
    io.err(`${label}: RabbitMQ at ${open.broker} failed: ${lost ?? open.redact(err)}; the files not done stay`);
    return 1;
  } finally {
    await open.connection.close().catch(() => undefined);
  }
  io.out(`sent ${sent} record(s) from ${path.join(dir, REFUSED_DIR)}${failed > 0 ? `; ${failed} file(s) stay` : ''}`);
  return failed > 0 ? 1 : 0;
}

/**
 * A refused file's records, once it has not changed for `SETTLE_MS` (the spool
 * writes it whole and fsyncs it; this waits out a write under way). Undefined,
 * said on stderr, when it holds bytes that are no record: it is left as it is.
 */
async function readSettled(file: string, io: CliIo, label: string): Promise<SpoolRecord[] | undefined> {
  for (;;) {
    const age = Date.now() - (await fs.promises.stat(file)).mtimeMs;
    if (age >= SETTLE_MS) break;
    await delay(SETTLE_MS - age);
  }
  const { records, damaged } = decodeSegment(await fs.promises.readFile(file));
  if (damaged.length === 0) return records;
  const bytes = damaged.reduce((sum, d) => sum + d.bytes.length, 0);
  io.err(
    `${label}: ${file} holds ${bytes} byte(s) that are no record (${damaged[0].reason}); left as it is, ` +
      'nothing of it sent: move it to damaged/ to look at it',
  );
  return undefined;
}

/** Declares an exchange as the app does: undefined when done, else why it is refused (records for it stay). */
async function declare(open: CliBroker, exchange: string, options: ResolvedMoAmqpOptions): Promise<string | undefined> {
  if (exchange === '') return undefined; // the default exchange
  if (!EXCHANGE_NAME.pattern.test(exchange)) {
    return `exchange "${printable(exchange)}" is not an exchange name: ${EXCHANGE_NAME.allowed}`;
  }
  const channel = await quietChannel(open.connection);
  try {
    await setUpExchange(channel, exchange, options);
    await closeQuietly(channel);
    return undefined;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 403 && code !== 404 && code !== 406) throw err;
    return `RabbitMQ refuses exchange "${exchange}": ${explainExchangeRefusal(err, [exchange], options) ?? open.redact(err)}`;
  }
}

/**
 * Publishes the records as recorded and waits for every confirm. Resolves with
 * those amqplib will not send; rejects when the broker does not confirm one.
 */
async function publishAll(channel: ConfirmChannel, records: readonly SpoolRecord[]): Promise<SpoolRecord[]> {
  const unsendable: SpoolRecord[] = [];
  const confirms: Promise<void>[] = [];
  for (const r of records) {
    const sent = publishConfirmed(channel, r.exchange, r.routingKey, r.content, r.properties);
    if (sent === undefined) unsendable.push(r);
    else confirms.push(sent);
  }
  const results = await Promise.allSettled(confirms);
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  return unsendable;
}

import { ResolvedMoAmqpOptions } from '../config/mo-amqp-options.interface';
import { MoAmqpConfigError } from '../errors/mo-amqp-config.error';
import { DiskSpool } from '../spool/disk-spool';
import { describeValue } from '../util/describe-value';

type Redact = (err: unknown) => string;

/** A spool directory that cannot be written is bad configuration: said at start, not at the first outage. */
export async function checkSpool(
  spool: DiskSpool | undefined,
  options: ResolvedMoAmqpOptions,
  redact: Redact,
): Promise<void> {
  try {
    await spool?.check();
  } catch (err) {
    throw spoolDirError(err, options, redact);
  }
}

/** What earlier processes left in the spool directory; a failure names the directory. */
export async function recoverSpool(spool: DiskSpool, options: ResolvedMoAmqpOptions, redact: Redact): Promise<number> {
  try {
    return await spool.recover();
  } catch (err) {
    throw spoolDirError(err, options, redact);
  }
}

function spoolDirError(err: unknown, options: ResolvedMoAmqpOptions, redact: Redact): MoAmqpConfigError {
  return new MoAmqpConfigError([
    {
      name: 'AMQP__SPOOL_DIR (spoolDir)',
      received: describeValue(options.spoolDir),
      allowed: `a directory this process can create and write in, or off (${redact(err)})`,
    },
  ]);
}

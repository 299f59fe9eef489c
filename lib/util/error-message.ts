/**
 * The message of anything thrown: an error's message, else its text. Not
 * `instanceof Error`: errors from another realm (a VM context, a test sandbox)
 * are errors too.
 */
export function messageOf(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as Error).message === 'string'
    ? (err as Error).message
    : String(err);
}

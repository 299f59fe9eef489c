import { explainExchangeRefusal } from '../../lib/runtime/exchanges';

const DECLARING = { exchangeDurable: true, declareExchanges: true };
const CHECKING = { exchangeDurable: true, declareExchanges: false };

/** An amqplib channel error as RabbitMQ 3.10 words it. */
const closed = (code: string, text: string) => new Error(`Channel closed by server: ${code} with message "${text}"`);

describe('explainExchangeRefusal', () => {
  it('names the exchange, both durabilities and the variable that fixes it', () => {
    const err = closed(
      '406 (PRECONDITION-FAILED)',
      "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'os2mo' in vhost 'mo': received 'true' but current is 'false'",
    );
    expect(explainExchangeRefusal(err, ['os2mo'], DECLARING)).toBe(
      'Exchange "os2mo" (vhost "mo") exists non-durable, and this application declares it durable ' +
        '(AMQP__EXCHANGE_DURABLE=true): set AMQP__EXCHANGE_DURABLE=false (option exchangeDurable: false) ' +
        'to share it as it is, or delete the exchange so that it is declared anew',
    );
    const other = closed(
      '406 (PRECONDITION-FAILED)',
      "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'os2mo' in vhost '/': received 'false' but current is 'true'",
    );
    expect(explainExchangeRefusal(other, ['os2mo'], { ...DECLARING, exchangeDurable: false })).toContain(
      'exists durable, and this application declares it non-durable (AMQP__EXCHANGE_DURABLE=false): set AMQP__EXCHANGE_DURABLE=true',
    );
  });

  it('says a topic exchange is needed when the type differs', () => {
    const err = closed(
      '406 (PRECONDITION-FAILED)',
      "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'os2mo' in vhost '/': received 'topic' but current is 'fanout'",
    );
    expect(explainExchangeRefusal(err, ['os2mo'], DECLARING)).toContain(
      'exists as a fanout exchange; MO events need a topic exchange',
    );
  });

  it('names a missing exchange, and what to do when only checking', () => {
    const err = closed('404 (NOT-FOUND)', "NOT_FOUND - no exchange 'os2mo' in vhost '/'");
    expect(explainExchangeRefusal(err, ['os2mo'], CHECKING)).toContain(
      'Exchange "os2mo" does not exist in vhost "/". With AMQP__DECLARE_EXCHANGES=false',
    );
  });

  it('says which permission is missing and which variable avoids needing it', () => {
    const err = closed(
      '403 (ACCESS-REFUSED)',
      "ACCESS_REFUSED - access to exchange 'os2mo' in vhost '/' refused for user 'integration'",
    );
    expect(explainExchangeRefusal(err, ['os2mo'], DECLARING)).toContain(
      'RabbitMQ user "integration" may not declare exchange "os2mo" (vhost "/"; no configure permission): ' +
        'set AMQP__DECLARE_EXCHANGES=false',
    );
  });

  it('leaves errors about anything else to the caller', () => {
    const queue = closed(
      '406 (PRECONDITION-FAILED)',
      "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'quorum' but current is 'classic'",
    );
    const someoneElses = closed('404 (NOT-FOUND)', "NOT_FOUND - no exchange 'other' in vhost '/'");
    expect(explainExchangeRefusal(queue, ['os2mo'], DECLARING)).toBeUndefined();
    expect(explainExchangeRefusal(someoneElses, ['os2mo'], DECLARING)).toBeUndefined();
    expect(explainExchangeRefusal(undefined, ['os2mo'], DECLARING)).toBeUndefined();
  });
});

import { parseAmqpUrl } from '../config/amqp-url';
import { redactUrl } from '../config/redact';
import { shellWord } from '../util/shell-word';

/**
 * Why a broker that answered will not let this client in, when waiting cannot
 * change it (a refused login, a vhost it will not open); undefined for a failure
 * that may pass (no broker yet, a network error). `message` is the connect
 * error's text, passwords already masked; `url` the URL that was tried.
 */
export function explainConnectRefusal(message: string, url: string): string | undefined {
  const parts = parseAmqpUrl(url);
  const user = parts?.user || 'guest';
  const vhost = parts?.vhost || '/';
  const at = redactUrl(url);
  if (/ACCESS[-_]REFUSED/.test(message)) {
    return (
      `RabbitMQ at ${at} refused the login of user "${user}" (ACCESS_REFUSED): ` +
      'check the user name and password in AMQP__URL (percent-encoded), and that the user exists (rabbitmqctl list_users)'
    );
  }
  // RabbitMQ closes the connection instead of opening the vhost; amqplib's text
  // then names neither the code (530) nor the vhost.
  if (/Expected ConnectionOpenOk; got <ConnectionClose|NOT[-_]ALLOWED/.test(message)) {
    return (
      `RabbitMQ at ${at} would not open virtual host "${vhost}" for user "${user}": it does not exist, ` +
      `or the user has no permission on it (rabbitmqctl add_vhost ${shellWord(vhost)}; ` +
      `rabbitmqctl set_permissions -p ${shellWord(vhost)} ${shellWord(user)} ".*" ".*" ".*"), ` +
      'or set the vhost in AMQP__URL (amqp://user:password@host:5672/vhost, "/" written %2F)'
    );
  }
  return undefined;
}

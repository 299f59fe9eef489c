"""OS2mo's Python peers on the wire, with pika (Debian's python3-pika), as test peers.

  pika_peer.py consume URL EXCHANGE COUNT TIMEOUT_S [BINDING]
      The seed's consumer script: exchange_declare (topic, non-durable: pika's
      default, as the seed wrote it), an exclusive queue bound BINDING (default
      "#.#.#", as the seed wrote it; RabbitMQ 4.3 takes only "#"), and one line
      "[routing_key] body" per message. Says " [*] Waiting for messages" on
      stderr once bound. Exits 0 after COUNT messages, 3 after TIMEOUT_S, 4 when
      the broker refuses the declaration or the binding (its reason on stderr).

  pika_peer.py publish URL EXCHANGE
      OS2mo 2021+ publishing: for each {"routingKey", "uuid", "objectUuid", "time",
      "order"} of the JSON array on stdin, basic_publish of json.dumps of the payload
      with no properties at all, keys in the given order.

  pika_peer.py send URL EXCHANGE
      One basic_publish per item of the JSON array on stdin, in order:
        {"routingKey", "change": UUID, "messageId"}: OS2mo's AMQP subsystem
            (2023-): body json.dumps(str(uuid.UUID(change))), the UUID as a JSON
            string; aio-pika's defaults (delivery_mode 1) and the message_id.
        {"routingKey", "legacy": {field: value, ...}}: OS2mo 2021+'s trigger:
            json.dumps of the fields in the order given, no properties at all.
        {"routingKey", "base64": BYTES, "messageId"?}: exactly those bytes,
            delivery_mode 1 (and the message_id when given).
      Writes {"bodies": [the base64 of each body sent]} on stdout.
"""
import base64
import json
import sys
import uuid

import pika


def connect(url):
    return pika.BlockingConnection(pika.URLParameters(url))


def consume(url, exchange, count, timeout_s, binding="#.#.#"):
    connection = connect(url)
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange=exchange, exchange_type="topic")
    except pika.exceptions.ChannelClosedByBroker as err:
        sys.stderr.write("refused: %s\n" % (err,))
        return 4
    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    try:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding)
    except pika.exceptions.ChannelClosedByBroker as err:
        sys.stderr.write("refused: %s\n" % (err,))
        return 4
    sys.stderr.write(" [*] Waiting for messages. To exit press CTRL+C\n")
    sys.stderr.flush()
    seen = 0
    for method, _properties, body in channel.consume(queue_name, auto_ack=True, inactivity_timeout=timeout_s):
        if method is None:
            return 3
        sys.stdout.write("[%s] %s\n" % (method.routing_key, body.decode("utf-8")))
        sys.stdout.flush()
        seen += 1
        if seen == count:
            break
    connection.close()
    return 0


def publish(url, exchange):
    connection = connect(url)
    channel = connection.channel()
    channel.confirm_delivery()  # only so the test knows they arrived; OS2mo did not wait
    for event in json.load(sys.stdin):
        fields = {"uuid": event["uuid"], "object_uuid": event["objectUuid"], "time": event["time"]}
        payload = {key: fields[key] for key in event["order"]}
        channel.basic_publish(exchange=exchange, routing_key=event["routingKey"], body=json.dumps(payload))
    connection.close()
    return 0


def body_and_properties(item):
    """What OS2mo's code would send for the item: its body bytes and properties."""
    if "change" in item:
        body = json.dumps(str(uuid.UUID(item["change"]))).encode("utf-8")
        return body, pika.BasicProperties(delivery_mode=1, message_id=item["messageId"])
    if "legacy" in item:
        return json.dumps(item["legacy"]).encode("utf-8"), None
    return base64.b64decode(item["base64"]), pika.BasicProperties(delivery_mode=1, message_id=item.get("messageId"))


def send(url, exchange):
    connection = connect(url)
    channel = connection.channel()
    channel.confirm_delivery()  # only so the test knows they arrived
    bodies = []
    for item in json.load(sys.stdin):
        body, properties = body_and_properties(item)
        channel.basic_publish(exchange=exchange, routing_key=item["routingKey"], body=body, properties=properties)
        bodies.append(base64.b64encode(body).decode("ascii"))
    connection.close()
    json.dump({"bodies": bodies}, sys.stdout)
    return 0


def main():
    mode, url, exchange = sys.argv[1:4]
    if mode == "consume":
        return consume(url, exchange, int(sys.argv[4]), float(sys.argv[5]), *sys.argv[6:7])
    if mode == "publish":
        return publish(url, exchange)
    if mode == "send":
        return send(url, exchange)
    sys.stderr.write("unknown mode %r\n" % mode)
    return 2


sys.exit(main())

"""The rules real OS2mo readers apply to a message body, as a test peer.

Reads a JSON array on stdin, writes a JSON array on stdout; runs on Python 3.7+.

  readers.py read [--pydantic]
                              each item {"body": "..."}: json.loads, uuid.UUID and
                              datetime.fromisoformat, as OS2mo consumers read it; with
                              --pydantic also ramqp's pydantic model (uuid: UUID,
                              object_uuid: UUID, time: datetime), or for a seed body
                              without object_uuid the same model without it. Answers
                              null for a body read, or the reader's error.
  readers.py ramqp            each item {"base64": "..."} (or {"body": "..."}): ramqp's
                              pydantic 1 model, every field required (uuid, object_uuid,
                              time), parse_raw of exactly those bytes (a byte-order mark
                              included), and nothing else. Null when read, else the error.
  readers.py uuid-json        each item {"base64" or "body", "routingKey"?}: FastRAMQPI's
                              PayloadUUID, pydantic 1 parse_raw_as(UUID, body bytes), as
                              it reads a message of OS2mo's AMQP subsystem; with a
                              routingKey also that it is one of ramqp 9's MO routing keys
                              (the object types). Null when read, else the error.
  readers.py isoformat        each item {"micros": n, "zone": "Europe/Copenhagen"}: what
                              datetime.isoformat() writes for that instant in that zone.
  readers.py same             each item {"sent": "...", "written": "...", "zone": "..."}:
                              null when the written time is the sent one (same instant,
                              same offset, naive stays naive; a bare date is midnight in
                              the zone), else why not. Needs Python 3.11+ to read every
                              shape that was sent.
"""
import base64
import datetime
import json
import sys
import uuid


def pydantic_models():
    from pydantic import BaseModel

    # ramqp's PayloadType (pydantic 1): every field required.
    class Payload(BaseModel):
        uuid: uuid.UUID
        object_uuid: uuid.UUID
        time: datetime.datetime

    class SeedPayload(BaseModel):
        uuid: uuid.UUID
        time: datetime.datetime

    return Payload, SeedPayload


def read(items, with_pydantic):
    models = pydantic_models() if with_pydantic else None
    answers = []
    for item in items:
        try:
            body = json.loads(item["body"])
            uuid.UUID(body["uuid"])
            if "object_uuid" in body:
                uuid.UUID(body["object_uuid"])
            datetime.datetime.fromisoformat(body["time"])
            if models is not None:
                models[0 if "object_uuid" in body else 1].parse_raw(item["body"])
            answers.append(None)
        except Exception as err:  # the reader's refusal is the answer
            answers.append("%s: %s" % (type(err).__name__, str(err).replace("\n", " ")))
    return answers


# ramqp 9's routing keys of OS2mo's AMQP subsystem (ramqp.mo._MORoutingKey): one word each.
RAMQP_MO_ROUTING_KEYS = (
    "address",
    "association",
    "class",
    "engagement",
    "facet",
    "itsystem",
    "ituser",
    "kle",
    "leave",
    "manager",
    "org_unit",
    "owner",
    "person",
    "related_unit",
    "rolebinding",
)


def body_bytes(item):
    """The body as the consumer gets it: bytes, from base64 (any bytes) or text (UTF-8)."""
    if "base64" in item:
        return base64.b64decode(item["base64"])
    return item["body"].encode("utf-8")


def refusal(err):
    return "%s: %s" % (type(err).__name__, str(err).replace("\n", " "))


def ramqp(items):
    payload = pydantic_models()[0]
    answers = []
    for item in items:
        try:
            payload.parse_raw(body_bytes(item))
            answers.append(None)
        except Exception as err:  # pydantic's refusal is the answer
            answers.append(refusal(err))
    return answers


def uuid_json(items):
    from pydantic import parse_raw_as

    answers = []
    for item in items:
        try:
            if "routingKey" in item and item["routingKey"] not in RAMQP_MO_ROUTING_KEYS:
                raise ValueError("routing key %r is not one of ramqp's MO routing keys" % item["routingKey"])
            parse_raw_as(uuid.UUID, body_bytes(item))
            answers.append(None)
        except Exception as err:  # the reader's refusal is the answer
            answers.append(refusal(err))
    return answers


def utc_epoch():
    return datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def isoformat(items):
    from zoneinfo import ZoneInfo

    return [
        (utc_epoch() + datetime.timedelta(microseconds=item["micros"])).astimezone(ZoneInfo(item["zone"])).isoformat()
        for item in items
    ]


def same(items):
    from zoneinfo import ZoneInfo

    answers = []
    for item in items:
        sent = datetime.datetime.fromisoformat(item["sent"])
        written = datetime.datetime.fromisoformat(item["written"])
        if len(item["sent"]) == 10:  # a bare date: midnight in the zone
            sent = sent.replace(tzinfo=ZoneInfo(item["zone"]))
        if (sent.tzinfo is None) != (written.tzinfo is None):
            answers.append("naive and aware: %s, %s" % (sent.isoformat(), written.isoformat()))
        # Subtraction, not ==: PEP 495 makes == false for a time in a DST gap compared across zones.
        elif sent - written != datetime.timedelta(0):
            answers.append("instants differ: %s, %s" % (sent.isoformat(), written.isoformat()))
        elif sent.utcoffset() != written.utcoffset():
            answers.append("offsets differ: %s, %s" % (sent.utcoffset(), written.utcoffset()))
        else:
            answers.append(None)
    return answers


def main():
    mode = sys.argv[1]
    items = json.load(sys.stdin)
    if mode == "read":
        answers = read(items, "--pydantic" in sys.argv[2:])
    elif mode == "ramqp":
        answers = ramqp(items)
    elif mode == "uuid-json":
        answers = uuid_json(items)
    elif mode == "isoformat":
        answers = isoformat(items)
    elif mode == "same":
        answers = same(items)
    else:
        sys.exit("unknown mode %r" % mode)
    json.dump({"python": sys.version.split()[0], "answers": answers}, sys.stdout)


main()

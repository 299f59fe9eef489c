"""The rules real OS2mo readers apply to a message body, as a test peer.

Reads a JSON array on stdin, writes a JSON array on stdout; runs on Python 3.7+.

  readers.py read [--pydantic]
                              each item {"body": "..."}: json.loads, uuid.UUID and
                              datetime.fromisoformat, as OS2mo consumers read it; with
                              --pydantic also ramqp's pydantic model (uuid: UUID,
                              object_uuid: UUID, time: datetime), or for a seed body
                              without object_uuid the same model without it. Answers
                              null for a body read, or the reader's error.
  readers.py isoformat        each item {"micros": n, "zone": "Europe/Copenhagen"}: what
                              datetime.isoformat() writes for that instant in that zone.
  readers.py same             each item {"sent": "...", "written": "...", "zone": "..."}:
                              null when the written time is the sent one (same instant,
                              same offset, naive stays naive; a bare date is midnight in
                              the zone), else why not. Needs Python 3.11+ to read every
                              shape that was sent.
"""
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
    elif mode == "isoformat":
        answers = isoformat(items)
    elif mode == "same":
        answers = same(items)
    else:
        sys.exit("unknown mode %r" % mode)
    json.dump({"python": sys.version.split()[0], "answers": answers}, sys.stdout)


main()

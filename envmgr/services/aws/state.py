"""An AWS account's S3 and SQS content as a manifest (`AccountState`), and repairing an account to match one: only
what differs is changed. The per-test reset compares a worker's account with its seeded state (the seeds folder's
files, their MD5 as S3's ETag) and the snapshots (`snapshots.py`) restore a captured state the same way.

A reset costs one `ListBuckets`, one `ListObjectsV2` per seeded bucket, one `ListQueues` and one
`GetQueueAttributes` per seeded queue when nothing changed, plus the repair of what did: an object deleted, added
or changed (its ETag differs) is put back or deleted; a bucket that is not in the state is emptied and deleted, a
missing one created and filled; a queue with messages (visible, in flight or delayed), or whose attributes differ
from those wanted (for a seeded queue: the emulator's defaults, learnt from the first queue a process's repair
makes again), is deleted and created again; a queue not in the state is deleted. What it does not see: an object's
metadata or tags changed in place with the same content, a bucket's configuration (versioning, policy), a queue's
tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "QUEUE_READ_ONLY",
    "AccountState",
    "Message",
    "ObjectState",
    "QueueState",
    "Repair",
    "capture_account",
    "file_etag",
    "repair_account",
]

QUEUE_READ_ONLY = frozenset(
    {
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible",
        "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
    }
)  # fmt: skip
"""what GetQueueAttributes answers that CreateQueue does not take"""
COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible")
DELETE_BATCH = 1000


def file_etag(path: Path) -> str:
    """The ETag S3 gives `path`'s bytes put in one request: their MD5, quoted."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f'"{digest.hexdigest()}"'


@dataclass(frozen=True)
class ObjectState:
    """One object: its ETag as S3 lists it, and where its bytes come from (a seed file, or bytes captured)."""

    etag: str
    body: Path | bytes
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def read(self) -> bytes:
        return self.body.read_bytes() if isinstance(self.body, Path) else self.body


@dataclass(frozen=True)
class Message:
    """A queue message as captured: enough to send it again."""

    body: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """its MessageAttributes, as ReceiveMessage gives them (SendMessage takes the same)"""
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True)
class QueueState:
    """One queue: its attributes as created (None: the emulator's defaults, i.e. never changed since creation) and
    its messages."""

    attributes: Mapping[str, str] | None = None
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class AccountState:
    """The S3 buckets (by their name in the account: the worker's) with their objects, and the SQS queues."""

    buckets: Mapping[str, Mapping[str, ObjectState]] = field(default_factory=dict)
    queues: Mapping[str, QueueState] = field(default_factory=dict)


@dataclass
class Repair:
    """What a repair changed (for tests and benchmarks): names of buckets, `bucket/key` objects and queues."""

    buckets: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.buckets or self.objects or self.queues)


Client = Callable[[str], Any]
"""a boto3 client of an AWS service ('s3', 'sqs') in the account"""


def repair_account(
    client: Client, state: AccountState, defaults: dict[str, str] | None = None, *, s3: bool = True, sqs: bool = True
) -> Repair:
    """Make the account's S3 buckets and objects and its SQS queues what `state` says, changing only what differs.

    `defaults`: the attributes the emulator gives a queue created without any (learnt here into the dict the
    first time a queue is created, kept by the caller): a queue the state wants with its defaults is compared with
    them (LocalStack does not move LastModifiedTimestamp when its attributes change)."""
    done = Repair()
    if s3:
        _repair_s3(client("s3"), state.buckets, done)
    if sqs:
        _repair_sqs(client("sqs"), state.queues, done, {} if defaults is None else defaults)
    return done


def capture_account(client: Client) -> AccountState:
    """The account's S3 buckets and objects (their bytes, content type and metadata) and its SQS queues (their
    attributes, and their visible messages: received, then made visible again at once; their receive count grows
    by one). Messages in flight or delayed at that moment are not seen."""
    s3, sqs = client("s3"), client("sqs")
    buckets: dict[str, dict[str, ObjectState]] = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        objects = buckets.setdefault(name, {})
        for key, etag in listing(s3, name).items():
            found = s3.get_object(Bucket=name, Key=key)
            objects[key] = ObjectState(
                etag=etag, body=found["Body"].read(), content_type=found.get("ContentType"),
                metadata=found.get("Metadata", {}),
            )  # fmt: skip
    queues = {
        queue_name(url): QueueState(attributes=settable(_attributes(sqs, url)), messages=_messages(sqs, url))
        for url in sqs.list_queues().get("QueueUrls", [])
    }
    return AccountState(buckets=buckets, queues=queues)


def _messages(sqs: Any, url: str) -> tuple[Message, ...]:
    found: list[Message] = []
    handles: list[str] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, AttributeNames=["All"],
            MessageAttributeNames=["All"], WaitTimeSeconds=0,
        )  # fmt: skip
        received = answer.get("Messages", [])
        if not received:
            break
        for message in received:
            attributes = message.get("Attributes", {})
            found.append(Message(
                body=message["Body"], attributes=message.get("MessageAttributes", {}),
                group_id=attributes.get("MessageGroupId"), deduplication_id=attributes.get("MessageDeduplicationId"),
            ))  # fmt: skip
            handles.append(message["ReceiptHandle"])
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(number), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for number, handle in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return tuple(found)


# S3 -------------------------------------------------------------------------------------------------------------


def listing(s3: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag of every object in `bucket`."""
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return found


def _put(s3: Any, bucket: str, key: str, item: ObjectState) -> None:
    extra: dict[str, Any] = {}
    if item.content_type:
        extra["ContentType"] = item.content_type
    if item.metadata:
        extra["Metadata"] = dict(item.metadata)
    s3.put_object(Bucket=bucket, Key=key, Body=item.read(), **extra)


def _delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def _repair_s3(s3: Any, buckets: Mapping[str, Mapping[str, ObjectState]], done: Repair) -> None:
    present = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    for name in sorted(present - set(buckets)):
        _delete_keys(s3, name, list(listing(s3, name)))
        s3.delete_bucket(Bucket=name)
        done.buckets.append(name)
    for name, objects in buckets.items():
        if name in present:
            found = listing(s3, name)
        else:
            s3.create_bucket(Bucket=name)
            done.buckets.append(name)
            found = {}
        extra = sorted(set(found) - set(objects))
        if extra:
            _delete_keys(s3, name, extra)
            done.objects += [f"{name}/{key}" for key in extra]
        for key, item in objects.items():
            if found.get(key) != item.etag:
                _put(s3, name, key, item)
                done.objects.append(f"{name}/{key}")


# SQS ------------------------------------------------------------------------------------------------------------


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def settable(attributes: Mapping[str, str]) -> dict[str, str]:
    """The attributes CreateQueue takes, of those GetQueueAttributes gave."""
    return {name: value for name, value in attributes.items() if name not in QUEUE_READ_ONLY}


def _as_wanted(attributes: Mapping[str, str], wanted: QueueState, defaults: Mapping[str, str]) -> bool:
    """Whether a queue with these attributes (GetQueueAttributes All) is as `wanted` says, messages apart from the
    count: a state with messages is never taken as met (which messages are there is not seen without receiving)."""
    if wanted.messages or any(attributes.get(count, "0") != "0" for count in COUNTS):
        return False
    if wanted.attributes is not None:
        return settable(attributes) == dict(wanted.attributes)
    if attributes.get("LastModifiedTimestamp") != attributes.get("CreatedTimestamp"):
        return False  # moto moves it when the attributes change
    return bool(defaults) and settable(attributes) == dict(defaults)  # unknown defaults: made again, and learnt


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    found: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return found


def _create(sqs: Any, name: str, wanted: QueueState) -> tuple[str, str | None]:
    """The queue made with its attributes but its RedrivePolicy (its dead-letter queue may not exist yet), which is
    returned, with its URL, to be set once every queue does."""
    attributes = dict(wanted.attributes or {})
    redrive = attributes.pop("RedrivePolicy", None)
    if name.endswith(".fifo"):
        attributes.setdefault("FifoQueue", "true")
    made = sqs.create_queue(QueueName=name, Attributes=attributes) if attributes else sqs.create_queue(QueueName=name)
    return str(made["QueueUrl"]), redrive


def _send(sqs: Any, url: str, messages: tuple[Message, ...]) -> None:
    for start in range(0, len(messages), 10):
        entries = []
        for number, message in enumerate(messages[start : start + 10]):
            entry: dict[str, Any] = {"Id": str(number), "MessageBody": message.body}
            if message.attributes:
                entry["MessageAttributes"] = dict(message.attributes)
            if message.group_id is not None:
                entry["MessageGroupId"] = message.group_id
            if message.deduplication_id is not None:
                entry["MessageDeduplicationId"] = message.deduplication_id
            entries.append(entry)
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def _repair_sqs(sqs: Any, queues: Mapping[str, QueueState], done: Repair, defaults: dict[str, str]) -> None:
    present = {queue_name(url): url for url in sqs.list_queues().get("QueueUrls", [])}
    redo: list[str] = []
    for name, url in present.items():
        if name not in queues:
            sqs.delete_queue(QueueUrl=url)
            done.queues.append(name)
        elif queues[name].attributes is None and not defaults:  # made again, to learn the emulator's defaults
            sqs.delete_queue(QueueUrl=url)
            made, _ = _create(sqs, name, queues[name])
            defaults.update(settable(_attributes(sqs, made)))
            _send(sqs, made, queues[name].messages)
            done.queues.append(name)
        elif not _as_wanted(_attributes(sqs, url), queues[name], defaults):
            sqs.delete_queue(QueueUrl=url)
            redo.append(name)
    # created in the state's order (dead-letter queues are usually named first), with their messages
    redrives: dict[str, str] = {}
    for name, wanted in queues.items():
        if name in present and name not in redo:
            continue
        url, redrive = _create(sqs, name, wanted)
        if wanted.attributes is None and not defaults:
            defaults.update(settable(_attributes(sqs, url)))
        if redrive is not None:
            redrives[url] = redrive
        _send(sqs, url, wanted.messages)
        done.queues.append(name)
    for url, redrive in redrives.items():
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})

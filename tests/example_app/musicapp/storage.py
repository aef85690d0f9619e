"""Artwork uploads to S3 and delivery announcements on SQS (boto3 clients are passed in)."""

from __future__ import annotations

import json
from typing import Any


def upload_artwork(s3: Any, bucket: str, release_id: int, image: bytes, content_type: str = "image/png") -> str:
    """Store a release's cover art; return its key."""
    extension = content_type.rsplit("/", 1)[-1]
    key = f"covers/{release_id}.{extension}"
    s3.put_object(Bucket=bucket, Key=key, Body=image, ContentType=content_type)
    return key


def announce_delivery(sqs: Any, queue: str, release_id: int, store: str) -> str:
    """Queue a delivery of a release to a store; return the message id."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    body = json.dumps({"release_id": release_id, "store": store})
    return str(sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"])

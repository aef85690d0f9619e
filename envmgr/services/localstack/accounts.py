"""Emptying AWS accounts in LocalStack, where every worker has its own account on one shared server.

Reset: envmgr's local image has an in-process endpoint (`POST /_envmgr/state/reset`, services/localstack/image) that
empties one account's S3, SQS and SNS stores in milliseconds; on the official image, which has none, envmgr deletes
through the AWS API instead (slower, same result). Other services' state (IAM, SSM ...) is not reset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.aws.accounts import (
    CLEARABLE,
    Clients,
    account_id,
    delete_through_api,
    gate_headers,
    load_aws_seeds,
)
from envmgr.services.localstack.settings import LocalStackSettings

__all__ = ["RESET_PATH", "cleared", "is_reset_summary", "reset_account", "restore_account"]

RESET_PATH = "/_envmgr/state/reset"
HTTP_TIMEOUT = 5
FALLBACK_ACCOUNTS = 8


def restore_account(
    endpoint: ServiceEndpoint, worker: Worker, settings: Settings, clients: Clients | None = None
) -> None:
    """The worker's account emptied and seeded again (every bucket, object and queue reloaded)."""
    reset_account(endpoint, worker, cleared(settings.localstack), clients)
    load_aws_seeds(endpoint, worker, settings, clients)


def cleared(config: LocalStackSettings) -> list[str]:
    """The services a reset empties: those of CLEARABLE that LocalStack runs."""
    return [name for name in CLEARABLE if name in config.services]


def reset_account(
    endpoint: ServiceEndpoint,
    worker: Worker | None,
    services: Sequence[str] = ("s3", "sqs"),
    clients: Clients | None = None,
) -> None:
    """Empty the worker's account of `services` (S3 buckets and objects, SQS queues, SNS topics and subscriptions);
    other accounts are untouched.

    With no worker: every account. (On the official image, which lacks envmgr's reset endpoint, "every account"
    means the shared one and those of the first FALLBACK_ACCOUNTS workers, deleted through the AWS API.)
    """
    if _reset_in_process(endpoint, worker, services):
        return
    accounts = (
        [worker] if worker is not None else [Worker(), *(Worker(f"gw{i}", True) for i in range(FALLBACK_ACCOUNTS))]
    )
    for account in accounts:
        delete_through_api(endpoint, account, services, clients)


def _reset_in_process(endpoint: ServiceEndpoint, worker: Worker | None, services: Sequence[str]) -> bool:
    """Reset through envmgr's extension (the local image); False where there is none.

    The extension is recognised by its answer (a summary with `services` and `took_ms`), never by the status code
    alone: the official image answers an unknown `POST` with 200 and an empty body, and resetting nothing there
    would leave every test's buckets and queues for the next one.
    """
    import urllib.error  # (when a reset runs: not in every pytest process that loads the plugin)
    import urllib.request

    selection: dict[str, list[str]] = {"services": list(services)}
    if worker is not None:
        selection["account_ids"] = [account_id(endpoint, worker)]
    request = urllib.request.Request(
        endpoint.url + RESET_PATH,
        data=json.dumps(selection).encode(),
        headers={"Content-Type": "application/json", **gate_headers(endpoint)},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):  # no such route: an image without the extension
            return False
        raise
    return is_reset_summary(body)


def is_reset_summary(body: bytes) -> bool:
    """True when `body` is the extension's answer to a reset."""
    try:
        summary = json.loads(body)
    except ValueError:
        return False
    return isinstance(summary, dict) and isinstance(summary.get("services"), dict) and "took_ms" in summary

"""One cheap, read-only AWS API call per service, as a plain HTTP request: what proves an AWS emulator (LocalStack,
moto) really serves a service, rather than only listing it as "available".

The requests carry a SigV4-shaped `Authorization` header whose credential scope names the access key id (the
account's), the region and the service: both emulators route a request to a service by that scope and check no
signature (nor does envmgr's gate in front of them, which checks the access key id). A 2xx answer means the
service's provider loaded and answered; LocalStack's image without moto, for instance, lists SNS as available
and answers `ListTopics` with 500 "No module named 'moto'".

A leaf module (no envmgr imports): the settings take the list of services LocalStack may run from `PROBE_CALLS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from urllib.error import HTTPError

__all__ = ["PROBE_CALLS", "ApiCall", "ServiceNotServed", "call", "call_each"]

DEFAULT_ACCOUNT = "000000000000"
TIMEOUT = 5.0
"""seconds for one call: the first call of a service loads its provider (LocalStack's SNS: ~2 s on 2 cores)"""


@dataclass(frozen=True)
class ApiCall:
    """One request of one AWS API operation."""

    service: str
    """the signing name (the credential scope's service)"""
    operation: str
    method: str = "POST"
    path: str = "/"
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


def _query(service: str, operation: str, version: str) -> ApiCall:
    """An operation of a service speaking the AWS query protocol (form-encoded POST)."""
    return ApiCall(
        service,
        operation,
        body=f"Action={operation}&Version={version}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


def _json(service: str, operation: str, target: str) -> ApiCall:
    """An operation of a service speaking the AWS JSON 1.1 protocol."""
    return ApiCall(
        service,
        operation,
        body=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{target}.{operation}"},
    )


PROBE_CALLS: Mapping[str, ApiCall] = MappingProxyType(
    {
        "s3": ApiCall("s3", "ListBuckets", method="GET"),
        "sqs": _query("sqs", "ListQueues", "2012-11-05"),
        "sns": _query("sns", "ListTopics", "2010-03-31"),
        "sts": _query("sts", "GetCallerIdentity", "2011-06-15"),
        "iam": _query("iam", "ListRoles", "2010-05-08"),
        "kms": _json("kms", "ListKeys", "TrentService"),
        "secretsmanager": _json("secretsmanager", "ListSecrets", "secretsmanager"),
        "ssm": _json("ssm", "DescribeParameters", "AmazonSSM"),
        "events": _json("events", "ListEventBuses", "AWSEvents"),
        "scheduler": ApiCall("scheduler", "ListSchedules", method="GET", path="/schedules"),
        "logs": _json("logs", "DescribeLogGroups", "Logs_20140328"),
        "cloudwatch": _query("monitoring", "ListMetrics", "2010-08-01"),
        "ses": _query("ses", "ListIdentities", "2010-12-01"),
        "route53": ApiCall("route53", "ListHostedZones", method="GET", path="/2013-04-01/hostedzone"),
        "acm": _json("acm", "ListCertificates", "CertificateManager"),
        "ec2": _query("ec2", "DescribeVpcs", "2016-11-15"),
    }
)
"""by the service's name in LocalStack's SERVICES (CloudWatch signs as "monitoring")"""


class ServiceNotServed(ConnectionError):
    """An AWS service did not answer its probe call (a 4xx/5xx answer, or none)."""


def call(base_url: str, api: ApiCall, *, region: str, access_key: str = DEFAULT_ACCOUNT) -> None:
    """Send `api` to the emulator at `base_url` with `access_key` (an account's access key id: the 12-digit account
    id, or the key the emulator's gate checks); raise ServiceNotServed unless it answers 2xx."""
    scope = f"{access_key}/20240101/{region}/{api.service}/aws4_request"
    headers = {
        **api.headers,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
        "X-Amz-Date": "20240101T000000Z",
    }
    import urllib.error  # (when a probe runs: not in every pytest process that loads the plugin)
    import urllib.request

    request = urllib.request.Request(base_url + api.path, data=api.body or None, headers=headers, method=api.method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise ServiceNotServed(f"{api.service} {api.operation}: HTTP {exc.code} {_reason(exc)}") from None
    except (OSError, TimeoutError) as exc:
        raise ServiceNotServed(f"{api.service} {api.operation}: {exc}") from None


def call_each(base_url: str, services: Sequence[str], *, region: str, access_key: str = DEFAULT_ACCOUNT) -> None:
    """The probe call of each service, in order; the first that fails raises."""
    for name in services:
        call(base_url, PROBE_CALLS[name], region=region, access_key=access_key)


def _reason(exc: HTTPError) -> str:
    """The error's message from the answer's body (XML or JSON), cut to one short line."""
    try:
        text = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        text = str(document.get("message") or document.get("Message") or document)
    return " ".join(text.split())[:200]

"""Background jobs on Celery: converting an amount with the partner's exchange rates.

The broker and result backend come from CELERY_BROKER_URL and CELERY_RESULT_BACKEND (Celery reads them by default);
the rates API from PARTNER_API_URL. Under envmgr the test process and the worker container each get their own
PARTNER_API_URL ([tool.envmgr.export] in pyproject.toml): WireMock's, as each of them reaches it.
"""

import json
import os
import urllib.error
import urllib.request

from celery import Celery

app = Celery("billing")
app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)

REQUEST_TIMEOUT = 2.0


class UpstreamError(Exception):
    """The rates API failed in a way worth retrying (5xx, time-out, connection refused)."""


def rate(currency: str) -> float:
    url = f"{os.environ.get('PARTNER_API_URL', 'https://rates.example.com')}/rates/{currency}"
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
            return float(json.load(response)["rate"])
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise UpstreamError(f"rates API answered {exc.code}") from None
        raise LookupError(f"no rate for {currency} ({exc.code})") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        raise UpstreamError(f"rates API unreachable: {exc}") from None


@app.task(autoretry_for=(UpstreamError,), max_retries=3, default_retry_delay=0.1, retry_backoff=False)
def convert(amount_cents: int, currency: str) -> int:
    """`amount_cents` US cents in `currency` cents, at the partner's rate; retried on the API's 5xx."""
    return round(amount_cents * rate(currency))

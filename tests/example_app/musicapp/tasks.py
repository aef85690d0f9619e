"""Background jobs of musicapp, on Celery.

The broker comes from CELERY_BROKER_URL and CELERY_RESULT_BACKEND, which Celery reads by default. The metadata API
(MusicBrainz-like) is METADATA_API_URL; inside an envmgr environment the worker containers get WIREMOCK_URL, the
stub server standing in for it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from celery import Celery

app = Celery("musicapp")
app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)

REQUEST_TIMEOUT = 0.5


class UpstreamError(Exception):
    """The metadata API failed in a way worth retrying (5xx, time-out, connection reset)."""


def metadata_api_url() -> str:
    return os.environ.get("METADATA_API_URL") or os.environ.get("WIREMOCK_URL") or "https://musicbrainz.org"


@app.task(autoretry_for=(UpstreamError,), max_retries=2, default_retry_delay=0.1, retry_backoff=False)
def fetch_release_title(mbid: str) -> str:
    """The title of a release from the metadata API; retried on 5xx and time-outs, not on 4xx."""
    url = f"{metadata_api_url()}/ws/2/release/{mbid}"
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
            return str(json.load(response)["title"])
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise UpstreamError(f"metadata API answered {exc.code}") from None
        raise LookupError(f"no release {mbid} ({exc.code})") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        raise UpstreamError(f"metadata API unreachable: {exc}") from None

"""envmgr extension for LocalStack community (localstack-core 4.13.x): fast in-process state reset.

The community edition has no ``/_localstack/state/reset`` endpoint (that is LocalStack Pro). This module adds
routes to the LocalStack gateway (the edge ``ROUTER``) that clear the in-memory S3, SQS and SNS stores directly,
without going through the AWS API:

``POST /_envmgr/state/reset``
    Resets S3, SQS and SNS state. Optional selection, as a JSON body and/or query parameters:

    * ``account_id`` (string, or list of strings) / ``account_ids`` (list), query ``?account_id=A&account_id=B``:
      only these 12-digit AWS account ids are reset; every other account is untouched.
      Without it, all accounts are reset.
    * ``services`` (list, or comma separated string), query ``?service=s3`` (repeatable) or
      ``?services=s3,sqs``: which services to reset; default ``["s3", "sqs", "sns"]``.

    Answers 200 with a JSON summary, e.g.
    ``{"accounts": ["000000000001"], "services": {"s3": {"buckets": 2}, "sqs": {"queues": 1}, "sns": {"topics": 1}},
    "took_ms": 0.4}``.
    ``accounts`` is ``null`` when all accounts were reset. 400 on an invalid account id or unknown service.

``GET /_envmgr/state``
    Read-only summary of what the S3, SQS and SNS stores hold, per account:
    ``{"s3": {"<account>": ["bucket", ...]}, "sqs": {"<account>": {"<region>": ["queue", ...]}},
    "sns": {"<account>": {"<region>": ["topic arn", ...]}}}``.

Warm-up: after LocalStack reports "Ready.", a background thread loads the service catalog and the providers of
the services in ``SERVICES`` that are also in ``ENVMGR_WARMUP_SERVICES`` (default ``s3,sqs``) and sends one
read-only request per service through the gateway (S3 ListBuckets,
SQS ListQueues, as the default account 000000000000): what the first AWS request would otherwise pay
(~0.9 s for S3), so the first request of a test is fast. Disable with ``ENVMGR_WARMUP=0``.

The module is registered as a LocalStack ``on_infra_start`` runtime hook (plux entry point, see the
``envmgr_localstack_ext-*.dist-info/entry_points.txt`` next to it), so it is active even when the user mounts
their own scripts over ``/etc/localstack/init/*.d``. ``install()`` is idempotent and can also be called from an
init script (``/etc/localstack/init/start.d/*.py``).

Services that were never used (lazy loading, ``EAGER_SERVICE_LOADING=0``) are not loaded by a reset: there is
nothing to clear in them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time

from localstack.runtime import hooks

LOG = logging.getLogger("envmgr.state_reset")

RESET_PATH = "/_envmgr/state/reset"
STATE_PATH = "/_envmgr/state"
SUPPORTED_SERVICES = ("s3", "sqs", "sns")

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_install_lock = threading.Lock()
_installed: dict[str, bool] = {"routes": False}
# one reset at a time; requests of the AWS API are not blocked by it
_reset_lock = threading.Lock()


class _BadRequest(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------


def _loaded_provider(service: str):
    """The provider instance of a service whose plugin has been loaded already, else None (never triggers loading)."""
    from localstack.services.plugins import SERVICE_PLUGINS, ServiceManager

    # ServiceManager.get_service_container (base class) only looks at loaded services; the subclass would lazy-load
    container = ServiceManager.get_service_container(SERVICE_PLUGINS, service)
    if container is None:
        return None
    return getattr(container.service, "_provider", None)


def _target_accounts(bundle, accounts: list[str] | None) -> list[str]:
    """Account ids present in an AccountRegionBundle, restricted to ``accounts`` (None = all).

    Uses plain dict access: ``AccountRegionBundle.__getitem__`` would create missing accounts.
    """
    present = list(dict.keys(bundle))
    if accounts is None:
        return present
    return [a for a in accounts if a in present]


# ---------------------------------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------------------------------


def _reset_s3(accounts: list[str] | None) -> dict:
    if "localstack.services.s3.models" not in sys.modules:
        return {"buckets": 0}  # S3 was never used: nothing to reset
    from localstack.services.s3.models import s3_stores

    provider = _loaded_provider("s3")
    backend = getattr(provider, "_storage_backend", None)
    universal = s3_stores._universal
    bucket_map: dict = universal.get("global_bucket_map", {})
    tags = universal.get("TAGS")

    removed: list[str] = []
    for account_id in _target_accounts(s3_stores, accounts):
        region_bundle = dict.get(s3_stores, account_id)
        if region_bundle is None:
            continue
        # buckets are a CrossRegionAttribute: one dict per account, kept in the bundle's ``_global``
        buckets = list(region_bundle._global.get("buckets", {}).keys())
        # also catch buckets that only the global map attributes to this account
        buckets += [b for b, owner in list(bucket_map.items()) if owner == account_id and b not in buckets]
        for bucket in buckets:
            bucket_map.pop(bucket, None)
            removed.append(bucket)
        region_bundle.reset()  # local + cross-region attributes of this account; never touches other accounts
        with s3_stores.lock:
            dict.pop(s3_stores, account_id, None)

    if accounts is None:
        # full reset: cross-account data too (bucket name map, tagging service)
        bucket_map.clear()
        universal.clear()

    # object tags are keyed "<bucket>/<key>/<version>", bucket tags by the bucket ARN (which has no account id)
    if tags is not None and removed:
        gone = set(removed)
        arns = {f"arn:aws:s3:::{b}" for b in gone}
        for key in list(tags.tags.keys()):
            if key in arns or key.split("/", 1)[0] in gone:
                tags.tags.pop(key, None)

    if provider is not None:
        # free the object data (spooled temp files) and the per-bucket caches of the provider
        fs = getattr(backend, "_filesystem", None)
        names = list(fs.keys()) if (accounts is None and fs is not None) else removed
        for bucket in names:
            _close_bucket_data(backend, bucket)
            provider._expiration_cache.pop(bucket, None)
            provider._preconditions_locks.pop(bucket, None)
        try:
            provider._cors_handler.invalidate_cache()
        except Exception:  # pragma: no cover - defensive, private API
            LOG.debug("could not invalidate the S3 CORS cache", exc_info=True)

    return {"buckets": len(removed)}


def _close_bucket_data(backend, bucket: str) -> None:
    if backend is None:
        return
    fs = getattr(backend, "_filesystem", None)
    if fs is not None:
        entry = fs.get(bucket)  # .get: _filesystem is a defaultdict
        if entry:
            for f in list(entry.get("keys", {}).values()):
                with contextlib.suppress(Exception):
                    f.close()
            for m in list(entry.get("multiparts", {}).values()):
                with contextlib.suppress(Exception):
                    m.close()
    try:
        backend.delete_bucket(bucket)  # drops the entry and removes the bucket's temp directory
    except Exception:
        LOG.debug("S3 storage backend could not delete bucket %s", bucket, exc_info=True)


def _s3_summary() -> dict:
    if "localstack.services.s3.models" not in sys.modules:
        return {}
    from localstack.services.s3.models import s3_stores

    out = {}
    for account_id in list(dict.keys(s3_stores)):
        bundle = dict.get(s3_stores, account_id)
        buckets = sorted(bundle._global.get("buckets", {}).keys()) if bundle is not None else []
        if buckets:
            out[account_id] = buckets
    return out


# ---------------------------------------------------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------------------------------------------------


def _reset_sqs(accounts: list[str] | None) -> dict:
    if "localstack.services.sqs.models" not in sys.modules:
        return {"queues": 0}
    from localstack.services.sqs import provider as sqs_provider_module
    from localstack.services.sqs.models import sqs_stores

    provider = _loaded_provider("sqs")
    move_tasks_manager = getattr(provider, "_message_move_task_manager", None)
    store_lock = getattr(sqs_provider_module, "_STORE_LOCK", None) or threading.RLock()

    count = 0
    with store_lock:
        for account_id in _target_accounts(sqs_stores, accounts):
            region_bundle = dict.get(sqs_stores, account_id)
            if region_bundle is None:
                continue
            for store in list(region_bundle.values()):
                queues = store.__dict__.get("attr_queues", {})
                for queue in list(queues.values()):
                    try:
                        queue.shutdown()  # wakes up long-polling ReceiveMessage calls, like DeleteQueue does
                    except Exception:
                        LOG.debug("error shutting down queue %s", queue, exc_info=True)
                    count += 1
                for task in list(store.__dict__.get("attr_move_tasks", {}).values()):
                    if move_tasks_manager is not None:
                        try:
                            move_tasks_manager.cancel(task)
                        except Exception:
                            LOG.debug("error cancelling message move task", exc_info=True)
            region_bundle.reset()
            with sqs_stores.lock:
                dict.pop(sqs_stores, account_id, None)
        if accounts is None:
            sqs_stores._universal.clear()
    return {"queues": count}


def _sqs_summary() -> dict:
    if "localstack.services.sqs.models" not in sys.modules:
        return {}
    from localstack.services.sqs.models import sqs_stores

    out: dict = {}
    for account_id in list(dict.keys(sqs_stores)):
        bundle = dict.get(sqs_stores, account_id)
        if bundle is None:
            continue
        regions = {r: sorted(s.__dict__.get("attr_queues", {}).keys()) for r, s in list(bundle.items())}
        regions = {r: q for r, q in regions.items() if q}
        if regions:
            out[account_id] = regions
    return out


# ---------------------------------------------------------------------------------------------------------------------
# SNS
# ---------------------------------------------------------------------------------------------------------------------
# LocalStack's SNS provider keeps its state in two places: topics in moto's ``sns_backends`` (a BackendDict: account ->
# region -> SNSBackend) and subscriptions, platform messages and the like in LocalStack's ``sns_stores``.


def _reset_sns(accounts: list[str] | None) -> dict:
    if "localstack.services.sns.provider" not in sys.modules:
        return {"topics": 0}  # SNS was never used (its provider imports moto's backend and the store)
    from localstack.services.sns.models import sns_stores
    from moto.core.base_backend import backend_lock
    from moto.sns import sns_backends

    count = 0
    with backend_lock:
        for account_id in _target_accounts(sns_backends, accounts):
            account_backend = dict.get(sns_backends, account_id)
            if account_backend is None:
                continue
            for backend in list(account_backend.values()):
                count += len(getattr(backend, "topics", {}))
            account_backend.reset()  # every region's backend re-initialised
            dict.pop(sns_backends, account_id, None)  # BackendDict.__getitem__ makes a fresh one on the next request
    for account_id in _target_accounts(sns_stores, accounts):
        region_bundle = dict.get(sns_stores, account_id)
        if region_bundle is None:
            continue
        region_bundle.reset()
        with sns_stores.lock:
            dict.pop(sns_stores, account_id, None)
    if accounts is None:
        sns_stores._universal.clear()
    return {"topics": count}


def _sns_summary() -> dict:
    if "localstack.services.sns.provider" not in sys.modules:
        return {}
    from moto.sns import sns_backends

    out: dict = {}
    for account_id in list(dict.keys(sns_backends)):
        account_backend = dict.get(sns_backends, account_id)
        if account_backend is None:
            continue
        regions = {r: sorted(b.topics.keys()) for r, b in list(account_backend.items())}
        regions = {r: t for r, t in regions.items() if t}
        if regions:
            out[account_id] = regions
    return out


_RESETTERS = {"s3": _reset_s3, "sqs": _reset_sqs, "sns": _reset_sns}


# ---------------------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------------------


def reset_state(accounts: list[str] | None = None, services=SUPPORTED_SERVICES) -> dict:
    """Reset the in-memory state of ``services`` for ``accounts`` (None: all accounts). Returns a summary."""
    if accounts is not None:
        for a in accounts:
            if not isinstance(a, str) or not _ACCOUNT_RE.match(a):
                raise _BadRequest(f"invalid AWS account id {a!r}: expected 12 digits")
    for s in services:
        if s not in _RESETTERS:
            raise _BadRequest(f"unsupported service {s!r}: supported are {list(SUPPORTED_SERVICES)}")
    started = time.perf_counter()
    result = {}
    with _reset_lock:
        for s in services:
            result[s] = _RESETTERS[s](accounts)
    took = (time.perf_counter() - started) * 1000
    LOG.info("envmgr state reset services=%s accounts=%s in %.2f ms", list(services), accounts or "all", took)
    return {"accounts": accounts, "services": result, "took_ms": round(took, 3)}


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(_as_list(v) if isinstance(v, str) else [v])
        return out
    return [value]


def _parse_selection(request) -> tuple[list[str] | None, list[str]]:
    body = {}
    raw = request.get_data(cache=True)
    if raw and raw.strip():
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise _BadRequest(f"body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise _BadRequest("JSON body must be an object")

    accounts = _as_list(body.get("account_id")) + _as_list(body.get("account_ids"))
    accounts += [a for v in request.args.getlist("account_id") for a in _as_list(v)]
    accounts += [a for v in request.args.getlist("account_ids") for a in _as_list(v)]
    services = _as_list(body.get("services")) + _as_list(body.get("service"))
    services += [s for v in request.args.getlist("service") for s in _as_list(v)]
    services += [s for v in request.args.getlist("services") for s in _as_list(v)]

    accounts = list(dict.fromkeys(accounts)) or None
    services = [s.lower() if isinstance(s, str) else s for s in dict.fromkeys(services)] or list(SUPPORTED_SERVICES)
    return accounts, services


def _json_response(payload: dict, status: int = 200):
    from localstack.http import Response

    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _handle_reset(request, **_kwargs):
    try:
        accounts, services = _parse_selection(request)
        return _json_response(reset_state(accounts, services))
    except _BadRequest as e:
        return _json_response({"error": str(e)}, status=400)


def _handle_state(request, **_kwargs):
    return _json_response({"s3": _s3_summary(), "sqs": _sqs_summary(), "sns": _sns_summary()})


def install() -> bool:
    """Register the routes on the LocalStack gateway. Idempotent; returns True when it registered them now."""
    with _install_lock:
        if _installed["routes"]:
            return False
        from localstack.services.edge import ROUTER

        ROUTER.add(RESET_PATH, endpoint=_handle_reset, methods=["POST"])
        ROUTER.add(STATE_PATH, endpoint=_handle_state, methods=["GET"])
        _installed["routes"] = True
    LOG.debug("envmgr state reset routes registered: POST %s, GET %s", RESET_PATH, STATE_PATH)
    return True


@hooks.on_infra_start()
def envmgr_register_state_reset():
    install()


def _warm_up() -> None:
    """Load what the first AWS request would otherwise load: the service catalog index (~0.3 s), the providers
    of the services listed both in SERVICES and in ENVMGR_WARMUP_SERVICES (default s3,sqs), and the request
    path of those services. Runs after "Ready.", so it does not delay the health check; a request arriving
    meanwhile simply waits for the same load locks."""
    started = time.perf_counter()
    try:
        from localstack.aws.spec import get_service_catalog

        get_service_catalog()
        services = [s for s in re.split(r"\s*,\s*", os.environ.get("SERVICES", "").strip()) if s]
        if services:  # with SERVICES empty (= all services) only the catalog is warmed
            from localstack.services.plugins import SERVICE_PLUGINS
            from localstack.utils.bootstrap import get_preloaded_services

            # only services that are cheap and safe to start unasked (others may spawn processes or download)
            allowed = {x for x in re.split(r"\s*,\s*", os.environ.get("ENVMGR_WARMUP_SERVICES", "s3,sqs")) if x}
            apis = sorted(set(get_preloaded_services()) & allowed)
            for api in apis:
                try:
                    SERVICE_PLUGINS.require(api)
                except Exception as e:  # a disabled/unknown service must not break anything
                    LOG.debug("envmgr warm-up: could not load %s: %s", api, e)
            _warm_requests(apis)
        LOG.debug("envmgr warm-up done in %.0f ms", (time.perf_counter() - started) * 1000)
    except Exception:
        LOG.debug("envmgr warm-up failed", exc_info=True)


# read-only requests that take the lazy-loading hit of the request path (protocol parser/serializer, handler
# chain) for S3 and SQS; they only create the (empty) stores of the default account 000000000000
_WARM_REQUESTS = {
    "s3": ("GET", "/", None, {}),  # ListBuckets
    "sqs": (
        "POST",
        "/",
        b"Action=ListQueues&Version=2012-11-05",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
}


def _warm_requests(apis) -> None:
    import urllib.request

    from localstack import config

    listen = config.GATEWAY_LISTEN[0]
    host = listen.host if listen.host not in ("", "0.0.0.0", "::", "[::]") else "127.0.0.1"
    port = listen.port
    for api in apis:
        if api not in _WARM_REQUESTS:
            continue
        method, path, body, headers = _WARM_REQUESTS[api]
        headers = dict(headers)
        headers["Authorization"] = (
            "AWS4-HMAC-SHA256 Credential=000000000000/20240101/us-east-1/"
            f"{api}/aws4_request, SignedHeaders=host, Signature=0"
        )
        req = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except Exception as e:
            LOG.debug("envmgr warm-up request for %s failed: %s", api, e)


@hooks.on_infra_ready()
def envmgr_warm_up_services():
    if os.environ.get("ENVMGR_WARMUP", "1").strip().lower() in ("0", "false", "no", "off", ""):
        return
    threading.Thread(target=_warm_up, name="envmgr-warm-up", daemon=True).start()

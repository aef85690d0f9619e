"""envmgr Celery worker launcher: runs the ``celery`` command line unchanged, plus a readiness file.

``python celery_worker.py ARGS...`` behaves exactly like ``celery ARGS...`` (same click entry point), and in
addition writes ``$CELERY_READY_FILE`` (default ``/tmp/celery-worker.ready``) when the worker is ready to
consume (Celery's ``worker_ready`` signal) and removes it on shutdown. The container's HEALTHCHECK only tests
for that file, which costs no Python start and no broker round trip.
"""

import os
import sys
from pathlib import Path

READY_FILE = Path(os.environ.get("CELERY_READY_FILE") or "/tmp/celery-worker.ready")


def _remove_ready_file() -> None:
    try:
        READY_FILE.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:  # never fail the worker for the health file
        sys.stderr.write(f"envmgr: cannot remove {READY_FILE}: {e}\n")


def main() -> None:
    _remove_ready_file()  # a stale file from a previous run of a restarted container

    from celery.signals import worker_ready, worker_shutdown

    @worker_ready.connect(weak=False)
    def _on_ready(**_kwargs):
        try:
            READY_FILE.write_text(f"{os.getpid()}\n")
        except OSError as e:
            sys.stderr.write(f"envmgr: cannot write {READY_FILE}: {e}\n")

    @worker_shutdown.connect(weak=False)
    def _on_shutdown(**_kwargs):
        _remove_ready_file()

    sys.argv = ["celery", *sys.argv[1:]]
    from celery.__main__ import main as celery_main

    celery_main()


if __name__ == "__main__":
    main()

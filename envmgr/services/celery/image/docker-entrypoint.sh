#!/bin/sh
# envmgr Celery worker entrypoint (POSIX sh: Debian's /bin/sh is dash).
#   docker run IMAGE                      -> celery -A "$CELERY_APP" worker <fast-start flags> -Q "$CELERY_QUEUES" ...
#   docker run IMAGE --concurrency=1 ...  -> the same, with these arguments appended
#   docker run IMAGE some-command ...     -> runs that command (e.g. `celery -A app inspect ping`, `bash`)
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

if [ -z "${CELERY_APP:-}" ]; then
  echo "envmgr celery-worker: set CELERY_APP to the module (or module:attribute) of your Celery app," \
       "e.g. -e CELERY_APP=myapp.tasks, with your code mounted at /app" >&2
  exit 64
fi

# --pool=solo: the task runs in the worker process itself (no prefork children): fastest start, one task at a
#   time, and what a test environment wants (deterministic, debuggable).
# --without-mingle/--without-gossip/--without-heartbeat: no start-up synchronisation round and no event
#   traffic between workers; remote control (inspect/control ping) still works.
exec python /usr/local/lib/envmgr/celery_worker.py -A "$CELERY_APP" worker \
  --pool=solo --without-mingle --without-gossip --without-heartbeat \
  -Q "${CELERY_QUEUES:-celery}" --loglevel="${CELERY_LOGLEVEL:-INFO}" "$@"

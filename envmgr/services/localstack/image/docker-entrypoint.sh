#!/bin/sh
# envmgr LocalStack entrypoint: mirrors the official localstack/localstack image's docker-entrypoint.sh
# (LOCALSTACK_* prefix stripping, auth-token warning, BOOT init stage) and then runs the LocalStack runtime
# as PID 1 (it handles SIGTERM/SIGINT itself). POSIX sh: Debian's /bin/sh is dash.
set -eu

VENV=/opt/code/localstack/.venv

# Pro features are not available in this community-core image: say so, and go on.
if [ -n "${LOCALSTACK_AUTH_TOKEN:-}" ] || [ -n "${LOCALSTACK_API_KEY:-}" ]; then
  echo "WARNING: LOCALSTACK_AUTH_TOKEN/LOCALSTACK_API_KEY is set, but this image runs LocalStack community" \
       "(localstack-core) only; the token is ignored." >&2
fi

# Like the official image: LOCALSTACK_FOO=bar is also exported as FOO=bar (except LOCALSTACK_HOST,
# LOCALSTACK_HOSTNAME, the auth variables and names starting with a digit).
for name in $(env | sed -n 's/^LOCALSTACK_\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
  case "$name" in
    HOST|HOSTNAME|AUTH_TOKEN|API_KEY) continue ;;
  esac
  eval "export $name=\"\${LOCALSTACK_$name}\""
done

mkdir -p /var/lib/localstack/logs 2>/dev/null || true

# BOOT stage scripts run before LocalStack starts (START/READY/SHUTDOWN are run by LocalStack itself).
# Only pay for the extra interpreter start when there is something to run.
if [ -d /etc/localstack/init/boot.d ] && [ -n "$(ls -A /etc/localstack/init/boot.d 2>/dev/null)" ]; then
  "$VENV/bin/python" -m localstack.runtime.init BOOT
fi

if [ "$#" -gt 0 ]; then
  # an explicit command (e.g. `docker run IMAGE bash`) replaces the LocalStack runtime
  exec "$@"
fi
exec "$VENV/bin/python" -m localstack.runtime.main

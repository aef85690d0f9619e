#!/bin/bash
# Build-time training run that records a dynamic AppCDS archive for WireMock (JDK 17: -XX:ArchiveClassesAtExit).
# Starts WireMock with the runtime flags, exercises the code paths a test run uses (health, stub create/import,
# matching, templating, near misses for an unmatched request, request journal, reset), then stops it through
# POST /__admin/shutdown; the JVM writes the archive when it exits. Needs no curl: HTTP over bash's /dev/tcp.
# Usage: cds-training.sh ARCHIVE_FILE
set -euo pipefail
archive="$1"
port=8089
work=$(mktemp -d)
mkdir -p "$work/mappings" "$work/__files"
cat > "$work/mappings/file-stub.json" <<'JSON'
{"request": {"method": "GET", "url": "/from-file"},
 "response": {"status": 200, "bodyFileName": "hello.txt", "headers": {"Content-Type": "text/plain"}}}
JSON
echo "hello from __files" > "$work/__files/hello.txt"

# shellcheck disable=SC2086
java ${ENVMGR_JAVA_OPTS} -XX:ArchiveClassesAtExit="$archive" -Xlog:cds=error \
  -cp /var/wiremock/lib/wiremock-standalone.jar wiremock.Run \
  --port "$port" --root-dir "$work" --disable-banner --global-response-templating &
pid=$!

# http METHOD PATH [BODY] -> prints the status line
http() {
  local body="${3:-}"
  exec 3<>"/dev/tcp/127.0.0.1/${port}" || return 1
  printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$1" "$2" "${#body}" "$body" >&3
  local status
  IFS= read -r status <&3 || true
  cat <&3 >/dev/null || true
  exec 3<&-
  echo "$1 $2 -> ${status%$'\r'}"
}

for _ in $(seq 1 300); do
  if http GET /__admin/health >/dev/null 2>&1; then break; fi
  sleep 0.1
done

for _ in 1 2 3; do
  http GET /__admin/health
  http POST /__admin/mappings '{"request":{"method":"GET","urlPath":"/api/items","queryParameters":{"q":{"equalTo":"x"}}},"response":{"status":200,"jsonBody":{"items":[1,2,3]},"headers":{"Content-Type":"application/json"}}}'
  http POST /__admin/mappings '{"request":{"method":"POST","urlPathPattern":"/api/echo/.*","bodyPatterns":[{"matchesJsonPath":"$.name"}]},"response":{"status":201,"body":"{{jsonPath request.body '"'"'$.name'"'"'}} {{request.path.[2]}} {{now}}","transformers":["response-template"]}}'
  http POST /__admin/mappings/import '{"mappings":[{"request":{"method":"GET","url":"/imported"},"response":{"status":204}},{"request":{"method":"PUT","urlPattern":"/imp/[0-9]+","headers":{"X-Token":{"matches":"t.*"}}},"response":{"status":200,"body":"ok","fixedDelayMilliseconds":1}}]}'
  http GET "/api/items?q=x"
  http POST /api/echo/abc '{"name":"wm"}'
  http GET /imported
  http GET /from-file
  http GET /no-such-stub
  http GET /__admin/mappings
  http GET /__admin/requests
  http POST /__admin/requests/count '{"method":"GET","url":"/imported"}'
  http GET /__admin/requests/unmatched/near-misses
  http POST /__admin/mappings/reset
  http POST /__admin/reset
done

http POST /__admin/shutdown || true
wait "$pid" || true
rm -rf "$work"
test -s "$archive"
ls -la "$archive"

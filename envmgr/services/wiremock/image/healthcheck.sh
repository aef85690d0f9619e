#!/bin/bash
# Container health check without curl: GET /__admin/health over bash's /dev/tcp must answer HTTP 200.
# Port: $WIREMOCK_HEALTH_PORT, else 8080 (WireMock's default --port).
port="${WIREMOCK_HEALTH_PORT:-8080}"
exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
printf 'GET /__admin/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || exit 1
exec 3<&-
case "$status" in
  "HTTP/1.1 200"*|"HTTP/1.0 200"*) exit 0 ;;
  *) echo "unhealthy: ${status}" >&2; exit 1 ;;
esac

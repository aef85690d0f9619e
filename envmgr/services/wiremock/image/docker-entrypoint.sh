#!/bin/sh
# envmgr WireMock entrypoint, compatible with the official wiremock/wiremock image's entrypoint:
#   docker run IMAGE [wiremock options...]   -> java ... wiremock.Run [wiremock options...] $WIREMOCK_OPTIONS
#   docker run IMAGE some-command ...         -> runs that command instead
# Extension jars in /var/wiremock/extensions/ are put on the class path (after the WireMock jar, so that the
# AppCDS archive made at build time stays valid). JAVA_OPTS (user, empty by default) comes after
# ENVMGR_JAVA_OPTS (the fast-start defaults), so a user's flag wins. POSIX sh: Debian's /bin/sh is dash.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  cp=/var/wiremock/lib/wiremock-standalone.jar
  for jar in /var/wiremock/extensions/*.jar; do
    [ -e "$jar" ] && cp="$cp:$jar"
  done
  # word splitting of the *_OPTS variables is intended (several flags in one variable)
  # shellcheck disable=SC2086
  set -- java ${ENVMGR_JAVA_OPTS:-} ${JAVA_OPTS:-} -cp "$cp" wiremock.Run "$@"
fi

# shellcheck disable=SC2086
exec "$@" ${WIREMOCK_OPTIONS:-}

#!/bin/sh
# envmgr redis entrypoint: same behaviour as the official image's
# docker-entrypoint.sh (POSIX sh; /bin/sh is dash on Debian).
set -e

# first arg is `-f` or `--some-option`
# or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

if [ "$1" = 'redis-server' ]; then
	doProtectedMode=1
	configFile=
	if [ -f "$2" ]; then
		configFile="$2"
		if grep -q '^protected-mode' "$configFile"; then
			# if a config file is supplied and explicitly specifies "protected-mode", let it win
			doProtectedMode=
		fi
	fi
	if [ -n "$doProtectedMode" ]; then
		# Docker publishes ports explicitly (-p), so protected mode only gets in
		# the way: redis-server [config file] --protected-mode no [other options]
		shift # "redis-server"
		if [ -n "$configFile" ]; then
			shift
		fi
		set -- --protected-mode no "$@"
		if [ -n "$configFile" ]; then
			set -- "$configFile" "$@"
		fi
		set -- redis-server "$@"
	fi
fi

exec "$@"

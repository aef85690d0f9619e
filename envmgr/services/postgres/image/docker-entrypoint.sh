#!/usr/bin/env bash
# envmgr postgres entrypoint. Same interface as the official image's
# docker-entrypoint.sh, plus a fast path for the cluster baked into the image:
# on first start the baked cluster is personalised (user, password, database)
# with a single `postgres --single` run before the server is exec'ed, so the
# server never accepts a connection with the build-time credentials.
set -Eeo pipefail

# present in $PGDATA while the build-time cluster has not been personalised
BAKED_MARKER='.envmgr-baked'
# database created at build time, renamed to $POSTGRES_DB at first start
SPARE_DB='envmgr_spare'

# usage: file_env VAR [DEFAULT]
#    ie: file_env 'XYZ_DB_PASSWORD' 'example'
# (will allow for "$XYZ_DB_PASSWORD_FILE" to fill in the value of
#  "$XYZ_DB_PASSWORD" from a file, especially for Docker's secrets feature)
file_env() {
	local var="$1"
	local fileVar="${var}_FILE"
	local def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(< "${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

# SQL quoting (into a variable: no subshell, this is on the start-up path).
# usage: sql_literal VAR STRING -> VAR=E'...' with backslash, quote, CR and LF
#        escaped, so the literal stays on one line
#        sql_ident VAR STRING   -> VAR="..." with double quotes doubled
#                                  (U&"..." if it holds a CR or LF)
sql_literal() {
	local s="$2" q="'" bs='\' nl=$'\n' cr=$'\r'
	s="${s//"$bs"/"$bs$bs"}"
	s="${s//"$q"/"$bs$q"}"
	s="${s//"$nl"/"${bs}n"}"
	s="${s//"$cr"/"${bs}r"}"
	printf -v "$1" "E'%s'" "$s"
}
sql_ident() {
	local s="$2" dq='"' bs='\' nl=$'\n' cr=$'\r'
	s="${s//"$dq"/"$dq$dq"}"
	if [[ "$s" == *["$nl$cr"]* ]]; then
		# keep it on one line: U&"..." with \000A / \000D escapes
		s="${s//"$bs"/"$bs$bs"}"
		s="${s//"$nl"/"${bs}000A"}"
		s="${s//"$cr"/"${bs}000D"}"
		printf -v "$1" 'U&"%s"' "$s"
	else
		printf -v "$1" '"%s"' "$s"
	fi
}

docker_setup_env() {
	file_env 'POSTGRES_PASSWORD'
	file_env 'POSTGRES_USER' 'postgres'
	file_env 'POSTGRES_DB' "$POSTGRES_USER"
	file_env 'POSTGRES_INITDB_ARGS'
	# the default password_encryption of PostgreSQL 15
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	export POSTGRES_HOST_AUTH_METHOD
}

docker_verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOE
		exit 1
	fi
	if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
		cat >&2 <<-'EOWARN'
			********************************************************************************
			WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
			         anyone with access to the Postgres port to access your database without
			         a password, even if POSTGRES_PASSWORD is set.
			********************************************************************************
		EOWARN
	fi
}

# create the data and socket directories; as root, also fix their ownership
# (forks are kept to a minimum: each costs ~2 ms and this is on the start-up path)
docker_create_db_directories() {
	local user="$EUID"
	if [ ! -d "$PGDATA" ]; then
		mkdir -p "$PGDATA"
	fi
	chmod 00700 "$PGDATA" || :
	if [ ! -d /var/run/postgresql ]; then
		mkdir -p /var/run/postgresql || :
		chmod 03775 /var/run/postgresql || :
	fi
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [ "$user" = '0' ]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		fi
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	# allow the container to be started with `--user` / a foreign-owned volume
	# (the prebuilt cluster is owned by postgres already: skip the walk)
	if [ "$user" = '0' ] && [ ! -e "$PGDATA/$BAKED_MARKER" ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

docker_pg_setup_hba_conf() {
	{
		printf '\n'
		if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
			printf '# warning trust is enabled for all connections\n'
			printf '# see https://www.postgresql.org/docs/12/auth-trust.html\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >> "$PGDATA/pg_hba.conf"
}

# true if the server arguments turn fsync off (e.g. `-c fsync=off`); the last
# setting wins, as in postgres
_pg_args_fsync_off() {
	local arg val='' next=
	for arg; do
		if [ -n "$next" ]; then
			next=
			case "$arg" in fsync=*) val="${arg#fsync=}" ;; esac
			continue
		fi
		case "$arg" in
			-c) next=1 ;;
			-cfsync=* | --fsync=*) val="${arg#*fsync=}" ;;
		esac
	done
	case "${val,,}" in
		off | of | false | f | fa | fal | fals | no | n | 0) return 0 ;;
	esac
	return 1
}

# Fast path: apply POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB to the baked
# cluster in one single-user backend (no listening socket is ever opened).
docker_personalise_baked_cluster() {
	local sql='' out sep=$'\n\n' user_lit user_id pw_lit db_id opts=()
	# The shutdown checkpoint of the single-user backend fsyncs what it wrote
	# (~20-30 ms here). When the server itself is told to run without fsync,
	# durability is off anyway: skip it for this step too.
	if _pg_args_fsync_off "$@"; then
		opts+=(-c fsync=off)
	fi
	sql_literal user_lit "$POSTGRES_USER"
	sql_ident user_id "$POSTGRES_USER"
	sql_literal pw_lit "$POSTGRES_PASSWORD"
	sql_ident db_id "$POSTGRES_DB"
	if [[ "$POSTGRES_USER" == pg_* ]]; then
		# what initdb --username would say
		printf >&2 'error: superuser name "%s" is disallowed; role names cannot begin with "pg_"\n' "$POSTGRES_USER"
		exit 1
	fi
	if [ "$POSTGRES_USER" != 'postgres' ]; then
		# OID 10 is the bootstrap superuser; ALTER ROLE ... RENAME refuses to
		# rename the session user, which a single-user backend always runs as.
		sql+="UPDATE pg_catalog.pg_authid SET rolname = $user_lit WHERE oid = 10;$sep"
	fi
	if [ -n "$POSTGRES_PASSWORD" ]; then
		if [ 'md5' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
			sql+="SET password_encryption = 'md5';$sep"
		fi
		sql+="ALTER ROLE $user_id WITH PASSWORD $pw_lit;$sep"
	fi
	case "$POSTGRES_DB" in
		postgres | template0 | template1)
			sql+="DROP DATABASE $SPARE_DB;$sep" ;;
		"$SPARE_DB") ;;
		*)
			sql+="ALTER DATABASE $SPARE_DB RENAME TO $db_id;$sep" ;;
	esac
	# -j: a command ends at ";" followed by an empty line (the quoting above
	# leaves no raw newline inside a statement).
	# log_min_error_statement=panic keeps the password out of the log on error.
	if ! out="$(printf '%s' "$sql" | postgres --single -j -D "$PGDATA" "${opts[@]}" \
		-c log_min_error_statement=panic -c log_min_messages=warning template1 2>&1)" \
		|| [[ "$out" =~ (ERROR|FATAL|PANIC): ]]; then
		printf >&2 '%s\n' "$out"
		printf >&2 'error: could not apply POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB to the baked cluster\n'
		exit 1
	fi
}

# Slow path (empty $PGDATA, or POSTGRES_INITDB_ARGS / POSTGRES_INITDB_WALDIR given):
# a regular initdb, like the official image.
docker_init_database_dir() {
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
	fi
	# --pwfile refuses to handle a properly-empty file (hence the "\n")
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
}

# start a server reachable on the unix socket only (for init scripts)
docker_temp_server_start() {
	if [ "$1" = 'postgres' ]; then
		shift
	fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

docker_temp_server_stop() {
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
}

docker_process_sql() {
	local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then
		query_runner+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST= PGHOSTADDR= "${query_runner[@]}" "$@"
}

docker_setup_db() {
	local dbAlreadyExists
	dbAlreadyExists="$(POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)"
	if [ -z "$dbAlreadyExists" ]; then
		POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		printf '\n'
	fi
}

# usage: docker_process_init_files [file [file [...]]]
docker_process_init_files() {
	printf '\n'
	local f
	for f; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					printf '%s: running %s\n' "$0" "$f"
					"$f"
				else
					printf '%s: sourcing %s\n' "$0" "$f"
					. "$f"
				fi
				;;
			*.sql)     printf '%s: running %s\n' "$0" "$f"; docker_process_sql -f "$f"; printf '\n' ;;
			*.sql.gz)  printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | docker_process_sql; printf '\n' ;;
			*.sql.xz)  printf '%s: running %s\n' "$0" "$f"; xzcat "$f" | docker_process_sql; printf '\n' ;;
			*.sql.zst) printf '%s: running %s\n' "$0" "$f"; zstd -dc "$f" | docker_process_sql; printf '\n' ;;
			*)         printf '%s: ignoring %s\n' "$0" "$f" ;;
		esac
		printf '\n'
	done
}

# fail early (like the official `ls /docker-entrypoint-initdb.d/`) if unreadable
docker_check_init_dir() {
	local d=/docker-entrypoint-initdb.d
	if [ -e "$d" ] && { [ ! -r "$d" ] || [ ! -x "$d" ]; }; then
		printf >&2 'error: cannot read %s\n' "$d"
		exit 1
	fi
}

docker_has_init_files() {
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] && return 0
	done
	return 1
}

# check arguments for an option that would cause postgres to stop
# return true if there is one
_pg_want_help() {
	local arg
	for arg; do
		case "$arg" in
			# postgres --help | grep 'then exit'
			# leaving out -C on purpose since it always fails and is unhelpful:
			# postgres: could not access the server configuration file "/var/lib/postgresql/data/postgresql.conf": No such file or directory
			-'?' | --help | --describe-config | -V | --version)
				return 0
				;;
		esac
	done
	return 1
}

_main() {
	# if first arg looks like a flag, assume we want to run postgres server
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = 'postgres' ] && ! _pg_want_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [ "$EUID" = '0' ]; then
			# then restart script as postgres user
			export HOME=/var/lib/postgresql
			exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi

		if [ ! -s "$PGDATA/PG_VERSION" ] && [ -s "${ENVMGR_BAKED_PGDATA:-}/PG_VERSION" ] \
			&& [ -z "$POSTGRES_INITDB_ARGS" ] && [ -z "${POSTGRES_INITDB_WALDIR:-}" ]; then
			# an empty data directory (a tmpfs, a fresh volume): start from the baked cluster
			cp -a "$ENVMGR_BAKED_PGDATA/." "$PGDATA/"
		fi

		if [ -e "$PGDATA/$BAKED_MARKER" ] \
			&& { [ -n "$POSTGRES_INITDB_ARGS" ] || [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; }; then
			# custom initdb options: the baked cluster does not fit, start over
			printf 'POSTGRES_INITDB_ARGS/POSTGRES_INITDB_WALDIR set: replacing the prebuilt cluster\n'
			find "$PGDATA" -mindepth 1 -delete
		fi

		if [ -s "$PGDATA/PG_VERSION" ] && [ -e "$PGDATA/$BAKED_MARKER" ]; then
			docker_verify_minimum_env
			docker_check_init_dir
			docker_personalise_baked_cluster "$@"
			docker_pg_setup_hba_conf
			if docker_has_init_files; then
				export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
				docker_temp_server_start "$@"
				docker_process_init_files /docker-entrypoint-initdb.d/*
				docker_temp_server_stop
				unset PGPASSWORD
			fi
			rm -f "$PGDATA/$BAKED_MARKER"
			printf 'PostgreSQL init process complete (prebuilt cluster); ready for start up.\n'
		elif [ ! -s "$PGDATA/PG_VERSION" ]; then
			docker_verify_minimum_env
			ls /docker-entrypoint-initdb.d/ > /dev/null
			docker_init_database_dir
			docker_pg_setup_hba_conf
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			docker_process_init_files /docker-entrypoint-initdb.d/*
			docker_temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

_main "$@"

#!/bin/sh
# Entrypoint of the PostgreSQL stand-in (see README.md): the parts of the official image's
# docker-entrypoint.sh that compose.yaml relies on. On first start (empty data directory):
# initdb with POSTGRES_USER as superuser and the password of POSTGRES_PASSWORD_FILE (or
# POSTGRES_PASSWORD), scram-sha-256 for TCP from anywhere, then POSTGRES_DB. Then the server runs
# as `postgres`, listening on every interface, port 5432. Any other command is run as given.
set -eu

if [ "${1:-}" != postgres ]; then
    exec "$@"
fi
shift

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

if [ "$(id -u)" = 0 ]; then
    run_as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
else
    run_as_postgres() { "$@"; }
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        password=$(cat "$POSTGRES_PASSWORD_FILE")
    else
        password=${POSTGRES_PASSWORD:-}
    fi
    if [ -z "$password" ]; then
        echo "standin-postgres: set POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$password" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    run_as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 \
        --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    trap - EXIT
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\"" | run_as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "standin-postgres: initialised $PGDATA (superuser $user, database $db)"
fi

# postgres as a child, so a SIGTERM (podman stop without the image's STOPSIGNAL) can be turned
# into a fast shutdown (SIGINT); SIGINT and SIGQUIT are passed on as they are. A simple command,
# not the function: a background function would run in a subshell that ignores SIGINT.
if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" "$@" &
else
    postgres -D "$PGDATA" "$@" &
fi
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' TERM INT
trap 'kill -QUIT "$pid" 2>/dev/null' QUIT
# `wait` also returns when a trapped signal arrives: wait again until postgres has exited.
while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break
done
exit "$status"

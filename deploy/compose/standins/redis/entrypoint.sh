#!/bin/sh
# Entrypoint of the Redis stand-in (see README.md), as the official image's: `redis-server ...`
# runs as the `redis` user in /data (made its own), with protected mode off (the official image
# builds Redis with that default: the container network is the boundary); anything else is run
# as given.
set -eu

if [ "${1:-}" != redis-server ]; then
    exec "$@"
fi
shift
# A configuration file, when given, must stay the first argument.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    conf=$1
    shift
    set -- "$conf" --protected-mode no "$@"
else
    set -- --protected-mode no "$@"
fi
if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups -- redis-server "$@"
fi
exec redis-server "$@"

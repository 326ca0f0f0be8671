#!/bin/sh
# The compose stack's one-shot `init-secrets` service runs this (in the PostgreSQL image, as
# root) before anything else starts. It fills the `secrets` volume with what the stack needs,
# once: a file that already exists is kept, so restarts and upgrades never change a secret.
#
#   secret_key        OPSDECK_SECRET_KEY_FILE     signs tokens, derives per-purpose keys
#   webhook_secret    OPSDECK_WEBHOOK_SECRET_FILE signs webhook deliveries
#   postgres_password POSTGRES_PASSWORD_FILE      the `opsdeck` database role's password
#   database_url      OPSDECK_DATABASE_URL_FILE   postgresql+psycopg://opsdeck:<that password>@db/...
#
# Values are 48 random letters and digits (about 285 bits), so the password needs no escaping
# inside the URL. Files belong to the image's user (10001) with mode 0400; nothing is printed.
# docs/deployment.md explains how to bring your own values and how to rotate them.
set -eu

dir=${1:-/secrets}
owner=${OPSDECK_UID:-10001}:${OPSDECK_GID:-10001}
umask 077
# The OpsDeck user only needs to reach the files it is given by name.
chmod 0711 "$dir"

random_value() {
    # 48 characters from [A-Za-z0-9]; the pipe's SIGPIPE on `tr` is expected.
    tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48
}

# write NAME VALUE: atomically, unless NAME already exists and is not empty.
write() {
    if [ -s "$dir/$1" ]; then
        echo "init-secrets: kept $1"
        return 0
    fi
    printf '%s' "$2" >"$dir/.$1.tmp"
    chown "$owner" "$dir/.$1.tmp"
    chmod 0400 "$dir/.$1.tmp"
    mv -f "$dir/.$1.tmp" "$dir/$1"
    echo "init-secrets: created $1"
}

write secret_key "$(random_value)"
write webhook_secret "$(random_value)"
write postgres_password "$(random_value)"
write database_url "postgresql+psycopg://opsdeck:$(cat "$dir/postgres_password")@db:5432/opsdeck"

# Every file must be non-empty and readable by the OpsDeck user, whoever wrote it.
for name in secret_key webhook_secret postgres_password database_url; do
    if [ ! -s "$dir/$name" ]; then
        echo "init-secrets: $dir/$name is empty" >&2
        exit 1
    fi
    chown "$owner" "$dir/$name"
    chmod 0400 "$dir/$name"
done

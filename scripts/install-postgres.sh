#!/usr/bin/env bash
# Makes PostgreSQL's server programs (initdb, pg_ctl) and psql available, as `shardgate local`
# and the tests need them; shared by scripts/local.sh and .ci/run.
#   bash scripts/install-postgres.sh            # server + psql
#   bash scripts/install-postgres.sh --pgbench  # also pgbench (the tests drive it)
# When initdb is missing it installs Debian's packages (apt-get update first), with sudo when not
# root. SHARDGATE_PG_INSTALL names a command to run instead of apt-get (the tests stub it);
# SHARDGATE_PG_CONFIG and SHARDGATE_PG_LIBDIR change where pg_config and the versioned
# /usr/lib/postgresql/*/bin are looked for (shardgate reads the same variables).
set -euo pipefail

want_pgbench=0
[ "${1:-}" = "--pgbench" ] && want_pgbench=1
pg_config_cmd="${SHARDGATE_PG_CONFIG:-pg_config}"
pg_libdir="${SHARDGATE_PG_LIBDIR:-/usr/lib/postgresql}"

say() { echo "==> $*" >&2; }

have_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    if command -v "$pg_config_cmd" >/dev/null 2>&1; then
        local bindir
        bindir="$("$pg_config_cmd" --bindir 2>/dev/null || true)"
        [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && return 0
    fi
    compgen -G "$pg_libdir/*/bin/initdb" >/dev/null
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $* (no sudo here): install PostgreSQL's server package yourself"
        exit 1
    fi
}

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get on this machine: install PostgreSQL (server and client, 13 or newer) yourself, then run this again"
        exit 1
    fi
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        as_root apt-get update
        apt_updated=1
    fi
    say "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

if have_initdb; then
    say "PostgreSQL server programs found"
else
    say "PostgreSQL's server programs (initdb) are not installed: installing them now (Debian packages; a minute or two)"
    if [ -n "${SHARDGATE_PG_INSTALL:-}" ]; then
        say "running \$SHARDGATE_PG_INSTALL: $SHARDGATE_PG_INSTALL"
        $SHARDGATE_PG_INSTALL
    else
        apt_install postgresql
        # Older releases ship pg_stat_statements in -contrib; in PG15 it is in the server package.
        if ! apt_install postgresql-contrib; then
            say "postgresql-contrib not installable; continuing without it"
        fi
    fi
    if ! have_initdb; then
        say "PostgreSQL was installed but initdb is still not found (PATH, $pg_config_cmd --bindir, $pg_libdir/*/bin)"
        exit 1
    fi
    say "PostgreSQL installed"
fi

if ! command -v psql >/dev/null 2>&1 || { [ "$want_pgbench" = 1 ] && ! command -v pgbench >/dev/null 2>&1; }; then
    say "psql/pgbench missing: installing postgresql-client"
    apt_install postgresql-client
fi

# shardgate runs PostgreSQL as user `postgres` when it runs as root; the package creates that
# user, a hand-built PostgreSQL may not have.
if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
    say "creating system user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

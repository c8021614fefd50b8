#!/usr/bin/env bash
# Installs the drivers tests/drivers.rs runs against shardgate and the oracle, from the package
# registries: psycopg 3 and asyncpg (PyPI, or Debian's packages where pip is missing),
# node-postgres and pg-cursor (npm, versions locked in tests/drivers/node/package-lock.json),
# pgjdbc and a JDK (Debian's packages). Called by .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "==> $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        as_root apt-get update -q
        apt_updated=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

if ! python3 -c 'import psycopg, asyncpg' 2>/dev/null; then
    if python3 -m pip --version >/dev/null 2>&1; then
        say "pip install psycopg[binary] asyncpg"
        python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]==3.3.9' 'asyncpg==0.32.0' \
            || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'psycopg[binary]==3.3.9' 'asyncpg==0.32.0'
    else
        apt_install python3-psycopg python3-asyncpg
    fi
fi
python3 -c 'import psycopg, asyncpg; print("==> psycopg", psycopg.__version__, "asyncpg", asyncpg.__version__)'

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if [ ! -d tests/drivers/node/node_modules/pg-cursor ]; then
    say "npm ci (node-postgres, pg-cursor)"
    (cd tests/drivers/node && npm ci --silent --no-audit --no-fund)
fi
echo "==> node $(node --version)"

command -v javac >/dev/null 2>&1 || apt_install default-jdk-headless
[ -f "${PGJDBC_JAR:-/usr/share/java/postgresql.jar}" ] || apt_install libpostgresql-jdbc-java
echo "==> $(javac -version 2>&1), pgjdbc $(readlink -f "${PGJDBC_JAR:-/usr/share/java/postgresql.jar}")"

#!/usr/bin/env bash
# The README's first command: installs PostgreSQL when it is missing (scripts/install-postgres.sh),
# then builds and runs `shardgate local` (three workers + shardgate on 127.0.0.1:6432, the
# example tables loaded). Arguments go on to `shardgate local`, e.g. --listen 127.0.0.1:7432.
# SHARDGATE_BIN runs that binary instead of `cargo run --release --` (the tests use it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-postgres.sh

if [ -n "${SHARDGATE_BIN:-}" ]; then
    exec "$SHARDGATE_BIN" local "$@"
fi
# rustup installs cargo into ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
echo "==> cargo run --release -- local $* (the first build takes a few minutes)" >&2
exec cargo run --release -- local "$@"

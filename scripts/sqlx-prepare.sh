#!/usr/bin/env bash
# Regenerates .sqlx/, the descriptions of the Postgres store's compile-checked queries that the
# crate builds from without a database (SQLX_OFFLINE=true), against a scratch Postgres database
# with the migrations applied. Run it after changing a query (sqlx::query!) or a migration, and
# commit .sqlx/.
#
#   scripts/sqlx-prepare.sh           regenerate .sqlx/
#   scripts/sqlx-prepare.sh --check   only check that .sqlx/ matches the queries (CI, via test.sh)
#
# Needs Postgres at $FIELDSYNC_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432, trust
# auth) and sqlx-cli, which is installed (a few minutes of compiling) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

check=()
case "${1:-}" in
    "") ;;
    --check) check=(--check) ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! cargo sqlx --version >/dev/null 2>&1; then
    log "installing sqlx-cli"
    cargo install sqlx-cli --no-default-features --features postgres,rustls --locked
fi

server=${FIELDSYNC_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}
# A name of its own: other checkouts may prepare at the same time on the same server.
export DATABASE_URL="$server/fieldsync_sqlx_prepare_$$_$(date +%s)"
cleanup() { cargo sqlx database drop -y -f >/dev/null 2>&1 || true; }
trap cleanup EXIT

cargo sqlx database create
cargo sqlx migrate run --source migrations/postgres >/dev/null
# `prepare` runs `cargo check` on the workspace with the macros describing every query live
# (it sets SQLX_OFFLINE=false itself); `--check` writes to target/ and compares with .sqlx/.
if ! cargo sqlx prepare --workspace "${check[@]}"; then
    if [ ${#check[@]} -gt 0 ]; then
        log ".sqlx/ does not match the queries: run scripts/sqlx-prepare.sh and commit .sqlx/"
    fi
    exit 1
fi

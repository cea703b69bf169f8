#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: starts (or installs) what the tests need,
# checks the gates (formatting, clippy with warnings as errors, .sqlx/ matching the queries), then
# runs the suite. Does nothing extra when everything is already there. Arguments go to nextest
# (e.g. `scripts/test.sh -p sync-server`); FIELDSYNC_SKIP_GATES=1 skips the gates locally (CI
# always runs them). A failed gate fails the run, after the tests have run too.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

# PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres): the Postgres store is tested for real.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fi
    log "starting PostgreSQL"
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
    pg_isready -h 127.0.0.1 -p 5432 || { log "PostgreSQL did not start"; exit 1; }
fi

# Mosquitto at 127.0.0.1:1883: the sensor tests publish readings over real MQTT. Debian's package
# when missing; started (loopback only, anonymous, as the tests expect) when nothing listens there.
mqtt_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! mqtt_up; then
    if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
        log "installing Mosquitto"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto
    fi
    log "starting Mosquitto on 127.0.0.1:1883"
    mqtt_conf=$(mktemp /tmp/fieldsync-mosquitto.XXXXXX.conf)
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' >"$mqtt_conf"
    "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -d -c "$mqtt_conf"
    for _ in $(seq 1 30); do mqtt_up && break; sleep 1; done
    mqtt_up || { log "Mosquitto did not start"; exit 1; }
fi

# Garage (S3-compatible, run as a separate program) for the blob store tests: built from crates.io,
# about 12 minutes on one core; nothing happens when it is installed. The tests start it themselves
# (fieldsync-test-support's `Garage::shared`).
if ! command -v garage >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
    log "installing Garage 2.5 (about 12 minutes)"
    cargo install garage --version 2.5.0 --locked
fi

# The page tests drive Debian's Chromium with playwright-core from npm (which downloads no browser
# of its own), and the tus test uses the reference tus client: tests/js, run from the Rust tests.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    log "installing Chromium (Debian's package)"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
if ! command -v node >/dev/null 2>&1; then
    log "installing Node.js"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
fi
# (again whenever package-lock.json changed: a copy of it is kept beside what it installed)
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.installed-lock.json; then
    log "installing the JavaScript test tools (tests/js, from its package-lock.json)"
    npm ci --prefix tests/js --no-audit --no-fund
    cp tests/js/package-lock.json tests/js/node_modules/.installed-lock.json
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

# A fresh build of the workspace and its tests takes about 2.5 GB (debug info is line tables only,
# see Cargo.toml); incremental caches would add a quarter more and help only repeated local builds.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
log "free disk space: $((free_kb / 1024)) MiB"
if [ "$free_kb" -lt $((3 * 1024 * 1024)) ]; then
    log "warning: under 3 GiB free; the build needs about 2.5 GB (cargo clean frees target/)"
fi

# Queries are checked at compile time against the committed .sqlx data, not a live database.
export SQLX_OFFLINE=true

failed_gates=()
if [ "${FIELDSYNC_SKIP_GATES:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    log "skipping the gates (FIELDSYNC_SKIP_GATES=1)"
else
    log "gate: cargo fmt --all --check"
    cargo fmt --all --check || failed_gates+=("cargo fmt (run \`cargo fmt --all\`)")
    log "gate: cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings || failed_gates+=("cargo clippy")
    log "gate: .sqlx/ matches the queries"
    scripts/sqlx-prepare.sh --check || failed_gates+=(".sqlx/ (run scripts/sqlx-prepare.sh)")
fi
# The end-to-end tests start the real `sync-server` binary as a child process.
log "building"
cargo build --workspace --bins
log "running the test suite"
if [ ${#failed_gates[@]} -eq 0 ]; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
fi
cargo nextest run --workspace --no-fail-fast "$@" || true
for gate in "${failed_gates[@]}"; do log "FAILED gate: $gate"; done
exit 1

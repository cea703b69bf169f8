#!/usr/bin/env bash
# The server's memory around bursts of sign-ins: N users, then three rounds of N concurrent
# sign-ins over HTTP, printing VmHWM/VmRSS of the server process after each round and RSS 3 s
# and 13 s later (whether freed memory went back to the system).
#
#   scripts/bench-signins.sh [N] [BINARY]     (defaults: 40, target/release/sync-server)
#
# Extra server settings go in SERVER_ENV, e.g. SERVER_ENV="FIELDSYNC_PASSWORD_MEMORY_MB=40".
# Needs curl. Builds the release binary first when BINARY is not given.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
bin=${2:-}
if [ -z "$bin" ]; then
    SQLX_OFFLINE=true cargo build --release -q -p sync-server --bin sync-server
    bin=target/release/sync-server
fi
port=$((20000 + RANDOM % 20000))
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for i in $(seq "$n"); do
    echo -n "password$i" | FIELDSYNC_DATA_DIR=$dir "$bin" user add --org acme --name "u$i" \
        --role technician --password-stdin >/dev/null 2>&1
done
env ${SERVER_ENV:-} FIELDSYNC_DATA_DIR="$dir" "$bin" serve --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
mem() { grep -E "^(VmHWM|VmRSS)" "/proc/$pid/status" | tr -s ' \t\n' ' '; }
echo "idle: $(mem)"
for round in 1 2 3; do
    codes=$(seq "$n" | xargs -P "$n" -I{} curl -s -o /dev/null -w "%{http_code}\n" -X POST \
        -H 'content-type: application/json' \
        -d '{"name":"u{}","password":"password{}","device_name":"d{}"}' \
        "http://127.0.0.1:$port/api/v1/auth/login" | sort | uniq -c | tr -s ' \n' ' ')
    echo "after round $round of $n sign-ins (HTTP status counts:$codes): $(mem)"
done
sleep 3
echo "3 s later: $(mem)"
sleep 10
echo "13 s later: $(mem)"

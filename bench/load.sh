#!/usr/bin/env bash
# Load test of the example server over loopback with wrk: requests/s and p99 latency of the
# unguarded route and of each guarded route, in one run.
#
#   bench/load.sh                 # 10 s per route, 2 threads, 32 connections
#   DURATION=5s CONNECTIONS=64 bench/load.sh
#
# Installs wrk with apt-get when it is missing. Builds the example server in release mode,
# starts it in development mode in a temporary directory on a free loopback port, reads the
# demo credentials it prints, runs wrk against each route, prints one table and stops the
# server. The server and wrk run on the same machine and share its cores: the numbers are a
# lower bound for the server alone.
set -euo pipefail

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is missing: installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi

echo "building the example server (release)..." >&2
(cd "$ROOT" && cargo build --release --example api_server --example bench_server --quiet)
SERVER="$TARGET_DIR/release/examples/api_server"
BENCH_SERVER="$TARGET_DIR/release/examples/bench_server"

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_ready() {
    for _ in $(seq 1 300); do
        grep -qx ready "$WORK/server.out" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; echo "the server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not get ready" >&2
    exit 1
}

# Port 0: the server picks a free port and prints it.
(cd "$WORK" && RUST_LOG=warn exec "$SERVER" --addr 127.0.0.1:0 --database "sqlite://$WORK/load.db" \
    >"$WORK/server.out" 2>"$WORK/server.err") &
SERVER_PID=$!
wait_ready

printed() { # the value printed after a label at start-up
    sed -n "s/^$1[[:space:]]*//p" "$WORK/server.out" | head -n1
}
BASE="$(printed 'tokengate example server listening on')"
API_KEY="$(printed 'demo API key (write:users):')"
M2M="$(printed 'demo M2M token (write:users):')"
SESSION="$(printed 'dev session token (1 hour):')"
for v in BASE API_KEY M2M SESSION; do
    [ -n "${!v}" ] || { echo "could not read $v from the server's output" >&2; exit 1; }
done

check() { # method path token expected-status
    local status
    status="$(curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" "$BASE$2")"
    [ "$status" = "$4" ] || { echo "$1 $2 answered $status, expected $4" >&2; exit 1; }
}
check GET /health none 200
check GET /api/example "$API_KEY" 200
check POST /api/example "$SESSION" 200
check DELETE /api/users/user_nobody "$M2M" 404

# wrk with a method and a header.
RUNS=0
run() { # name method path token
    RUNS=$((RUNS + 1))
    local script="$WORK/run$RUNS.lua" out
    printf 'wrk.method = "%s"\n' "$2" >"$script"
    if [ -n "$4" ]; then printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$4" >>"$script"; fi
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$BASE$3")"
    local rps p99 non2xx
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
    printf '| %-42s | %12s | %9s | %s |\n' "$1" "$rps" "$p99" "${non2xx:-0}"
}

echo
echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per route; server and wrk share $(nproc) cores"
echo "($(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1))"
echo
printf '| %-42s | %12s | %9s | %s |\n' route requests/s p99 "non-2xx answers"
printf '|%s|%s|%s|%s|\n' "--------------------------------------------" "--------------" "-----------" "---"
run "GET /health (unguarded)" GET /health ""
run "GET /api/example (API key, cached)" GET /api/example "$API_KEY"
run "POST /api/example (session token, RS256)" POST /api/example "$SESSION"
run "DELETE /api/users/user_nobody (M2M, 404)" DELETE /api/users/user_nobody "$M2M"
stop_server

# The guard alone: one handler, unguarded and behind #[accepts_token(api_key)] (examples/bench_server.rs).
(cd "$WORK" && exec "$BENCH_SERVER" 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err") &
SERVER_PID=$!
wait_ready
BASE="$(printed 'listening on')"
API_KEY="$(printed 'api key:')"
check GET /open none 200
check GET /guarded "$API_KEY" 200
echo
echo "The same handler unguarded and guarded (examples/bench_server.rs):"
echo
printf '| %-42s | %12s | %9s | %s |\n' route requests/s p99 "non-2xx answers"
printf '|%s|%s|%s|%s|\n' "--------------------------------------------" "--------------" "-----------" "---"
open_line="$(run "GET /open (unguarded)" GET /open "")"
guarded_line="$(run "GET /guarded (API key, cached)" GET /guarded "$API_KEY")"
echo "$open_line"
echo "$guarded_line"
open_rps="$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$open_line")"
guarded_rps="$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$guarded_line")"
awk -v o="$open_rps" -v g="$guarded_rps" 'BEGIN {
    printf "\nguard cost under load: %.1f%% of the unguarded throughput (%.2f µs more per request at saturation)\n",
        (1 - g / o) * 100, (1 / g - 1 / o) * 1e6 }'

#!/usr/bin/env bash
# `GET /api/me` over HTTP, side by side in one run: Clerk's official Node SDK behind Node's HTTP
# server (server.mjs) against tokengate's example server, on the same RS256 key, with one
# reused session token and with another session token on every request (TOKENS distinct ones,
# so that no cache answers). Each server on core 0, wrk (one thread) on core 1.
#
#   bench/clerk-node/http.sh                     # 5 s per measurement, 100 000 fresh tokens
#   DURATION=10s TOKENS=200000 bench/clerk-node/http.sh
#
# A measurement that sends more requests than there are tokens wraps around (the line says
# so): raise TOKENS. Installs wrk with apt-get when it is missing; builds the example server
# in release mode.
set -euo pipefail

DURATION="${DURATION:-5s}"
TOKENS="${TOKENS:-100000}"
CONNECTIONS="${CONNECTIONS:-8}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$HERE/../common.sh"
require_whole TOKENS CONNECTIONS
require_seconds DURATION

command -v node >/dev/null || { echo "node is required (v18+)" >&2; exit 1; }
ensure_installed wrk
(cd "$HERE" && npm install --no-audit --no-fund --silent)
build_examples api_server

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_process "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "signing $TOKENS session tokens..." >&2
node "$HERE/verify.mjs" many "$WORK" "$TOKENS"

# wait_for URL: until the server answers (any status).
wait_for() {
    for _ in $(seq 1 500); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.02
    done
    echo "no answer from $1" >&2
    exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

NODE_PORT="$(free_port)"
taskset -c 0 node "$HERE/server.mjs" "$WORK" "$NODE_PORT" >"$WORK/node.out" 2>&1 &
PIDS+=($!)
RUST_PORT="$(free_port)"
# The example server needs an OAuth issuer for its OAuth routes: one nobody asks here.
(cd "$WORK" && RUST_LOG=error exec taskset -c 0 "$TARGET_DIR/release/examples/api_server" \
    --addr "127.0.0.1:$RUST_PORT" --database "sqlite://$WORK/keys.db" \
    --session-public-key "$WORK/public.pem" --authorized-party https://app.example.com \
    --oauth-jwks-url "http://127.0.0.1:9/jwks" --oauth-issuer-name https://as.invalid \
    >"$WORK/rust.out" 2>&1) &
PIDS+=($!)
wait_for "http://127.0.0.1:$NODE_PORT/api/me"
wait_for "http://127.0.0.1:$RUST_PORT/api/me"

# Both must accept the token before anything is measured.
for port in "$NODE_PORT" "$RUST_PORT"; do
    status="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$WORK/token.txt")" \
        "http://127.0.0.1:$port/api/me")"
    [ "$status" = 200 ] || { echo "the server on port $port refused the token ($status)" >&2; exit 1; }
done

cat >"$WORK/reused.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $(cat "$WORK/token.txt")"
LUA
cat >"$WORK/fresh.lua" <<LUA
local tokens = {}
for line in io.lines("$WORK/tokens.txt") do tokens[#tokens + 1] = line end
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[(i - 1) % #tokens + 1] })
end
LUA

# measure NAME PORT SCRIPT: prints "NAME requests/s non-2xx requests".
measure() {
    local out rps total errors
    out="$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$3" "http://127.0.0.1:$2/api/me")"
    rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")"
    total="$(awk '/requests in/ {print $1}' <<<"$out")"
    errors="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
    echo "$1 $rps ${errors:-0} $total"
}

# Warm-up (Node's JIT, the servers' allocators), not measured.
for port in "$NODE_PORT" "$RUST_PORT"; do
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/reused.lua" "http://127.0.0.1:$port/api/me" >/dev/null
done

rows=()
for script in reused fresh; do
    rows+=("$(measure "clerk-node-$script" "$NODE_PORT" "$WORK/$script.lua")")
    rows+=("$(measure "tokengate-$script" "$RUST_PORT" "$WORK/$script.lua")")
done

echo
echo "GET /api/me, RS256 session tokens; servers on core 0, wrk (1 thread, $CONNECTIONS connections) on core 1; $DURATION each"
echo "node $(node --version), @clerk/backend $(node -p "require('$HERE/node_modules/@clerk/backend/package.json').version"); $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
echo
printf '| %-28s | %12s | %8s | %s |\n' server "requests/s" "non-2xx" "note"
printf '|%s|%s|%s|%s|\n' "------------------------------" "--------------" "----------" "------"
for row in "${rows[@]}"; do
    read -r name rps errors total <<<"$row"
    note=""
    if [[ "$name" == *fresh ]] && [ "$total" -gt "$TOKENS" ]; then
        note="$total requests for $TOKENS tokens: wrapped (raise TOKENS)"
    fi
    printf '| %-28s | %12s | %8s | %s |\n' "$name" "$rps" "$errors" "$note"
done

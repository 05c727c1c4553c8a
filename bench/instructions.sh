#!/usr/bin/env bash
# What the guard costs a server, counted in instructions: the same handler unguarded and
# behind #[accepts_token(api_key)] (examples/bench_server.rs), run under valgrind's callgrind,
# REQUESTS keep-alive requests to each route, and the instructions the whole server executed
# per request for each.
#
#   bench/instructions.sh                 # 2000 requests per route
#   REQUESTS=5000 bench/instructions.sh
#
# Unlike a throughput figure, an instruction count does not depend on what else the machine
# is doing: the same binary gives the same count (±0.1 %) on a busy machine, so this is the
# figure to compare two versions of the guard with. It is not a time: the kernel's work (most
# of a loopback request) is not counted, nor is where the instructions wait for memory (under
# load, most of the guard's time: see the cold benches in benches/guard.rs). A cached key is
# hashed with SipHash, which runs the same under valgrind; valgrind hides the CPU's SHA
# extensions, so a miss's SHA-256 would run its portable code (about 3 500 instructions) here.
# Installs valgrind with apt-get when it is missing.
set -euo pipefail

REQUESTS="${REQUESTS:-2000}"
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_installed valgrind
build_examples bench_server
SERVER="$TARGET_DIR/release/examples/bench_server"

WORK="$(mktemp -d)"
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

(cd "$WORK" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$SERVER" 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err") &
SERVER_PID=$!
for _ in $(seq 1 600); do
    grep -qx ready "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.1
done
grep -qx ready "$WORK/server.out" || { echo "the server did not get ready" >&2; exit 1; }
BASE="$(sed -n 's/^listening on //p' "$WORK/server.out")"
API_KEY="$(sed -n 's/^api key: //p' "$WORK/server.out")"

# Keep-alive requests, each with the same Authorization header (the unguarded route ignores it).
requests() { # path count
    python3 - "$BASE" "$1" "$API_KEY" "$2" <<'PY'
import http.client, sys, urllib.parse
base, path, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
url = urllib.parse.urlsplit(base)
connection = http.client.HTTPConnection(url.hostname, url.port)
for _ in range(count):
    connection.request("GET", path, headers={"Authorization": "Bearer " + key})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"GET {path} answered {response.status}")
PY
}

# Warm-up (the key is read from the store once, then cached), then one counted phase per route.
requests /open 300
requests /guarded 300
callgrind_control --zero "$SERVER_PID" >/dev/null
requests /open "$REQUESTS"
callgrind_control --dump=open "$SERVER_PID" >/dev/null
requests /guarded "$REQUESTS"
callgrind_control --dump=guarded "$SERVER_PID" >/dev/null

total() { grep -h '^summary:' "$1" | awk '{print $2}'; }
OPEN="$(total "$WORK/callgrind.out.1")"
GUARDED="$(total "$WORK/callgrind.out.2")"
echo
echo "instructions the server executed per request (callgrind, $REQUESTS requests each):"
echo
echo "| route | instructions per request |"
echo "|---|---|"
echo "| GET /open (unguarded) | $((OPEN / REQUESTS)) |"
echo "| GET /guarded (API key, cached) | $((GUARDED / REQUESTS)) |"
echo "| added by the guard | $(((GUARDED - OPEN) / REQUESTS)) |"
echo
echo "the guard's largest parts (inclusive instructions per request, /guarded):"
callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.out.2" 2>/dev/null |
    grep -E 'tokengate_runtime|quick_cache|siphasher|sha2::|crc32' |
    sed -E 's/^ *([0-9,]+) \( *[0-9.]+%\) +[^:]*:(.*) \[[^]]*\]$/\1 \2/' |
    awk -v n="$REQUESTS" '{c = $1; gsub(",", "", c); $1 = ""; printf "  %6d %s\n", c / n, $0}' | head -n 15

#!/usr/bin/env bash
# Flood benchmark: legitimate traffic's throughput (a cached API key on GET /api/example of the
# example server) alone, then while a second wrk floods the server with tokens nobody knows,
# one kind at a time:
#
#   control  GET /health without a token (what any flood costs: the CPU wrk and the server share)
#   garbage  ak_ keys with a wrong checksum (refused before any lookup)
#   opaque   random opaque strings on POST /api/example, which accepts OAuth tokens, with
#            introspection on (each a call to the authorization server)
#   forged   API keys with a valid checksum that no store holds (each a store query)
#   clerk    random well-shaped ak_ keys in Clerk-hosted mode (each a Backend API call)
#
#   bench/flood.sh                                  # 10 s per measurement, every kind
#   DURATION=5s KINDS="forged clerk" bench/flood.sh
#   CONNECTIONS=32 DELAY_MS=50 bench/flood.sh       # the backends answer after DELAY_MS
#
# Installs wrk with apt-get when it is missing. Builds the example server and the backends'
# stand-in (examples/flood_backends.rs: introspection and Clerk's Backend API on loopback,
# answering after DELAY_MS, counting their calls) in release mode. The server, both wrk
# processes and the stand-in share the machine's cores: "control" shows what a flood costs
# the legitimate traffic by competing for CPU alone; each other kind's cost beyond it is what
# its tokens cost the server.
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
DELAY_MS="${DELAY_MS:-20}"
FORGED="${FORGED:-300000}"
KINDS="${KINDS:-control garbage opaque forged clerk}"
for kind in $KINDS; do
    case "$kind" in
        control | garbage | opaque | forged | clerk) ;;
        *) echo "unknown kind '$kind' in KINDS; use control, garbage, opaque, forged, clerk" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_whole CONNECTIONS DELAY_MS FORGED
require_seconds DURATION
SECONDS_EACH="${DURATION%s}"

ensure_installed wrk
build_examples api_server flood_backends
SERVER="$TARGET_DIR/release/examples/api_server"
BACKENDS="$TARGET_DIR/release/examples/flood_backends"

WORK="$(mktemp -d)"
BACKENDS_PID=""
cleanup() {
    stop_server
    stop_process "$BACKENDS_PID"
    local pids
    pids="$(jobs -p)"
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # name pid: waits for the `ready` line in $WORK/name.out
    for _ in $(seq 1 300); do
        grep -qx ready "$WORK/$1.out" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { cat "$WORK/$1.err" >&2; echo "$1 exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "$1 did not get ready" >&2
    exit 1
}

printed() { # label name: the value printed after a label at start-up
    sed -n "s/^$1[[:space:]]*//p" "$WORK/$2.out" | head -n1
}

# The Lua scripts: the legitimate request, and one flood script per kind that counts answers.
write_scripts() {
    cat >"$WORK/flood_common.lua" <<'LUA'
local threads = {}
function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end
local charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
function random_string(n)
    local out = {}
    for i = 1, n do
        local k = math.random(1, #charset)
        out[i] = charset:sub(k, k)
    end
    return table.concat(out)
end
function init(args)
    counts = {}
    math.randomseed(os.time() * 1000 + id * 7919)
    if init_kind then init_kind(args) end
end
function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("counts")) do
            total[status] = (total[status] or 0) + n
        end
    end
    for status, n in pairs(total) do
        io.write(string.format("status %d %d\n", status, n))
    end
end
LUA
    cat >"$WORK/flood_control.lua" <<LUA
dofile("$WORK/flood_common.lua")
request = function() return wrk.format("GET", "/health") end
LUA
    cat >"$WORK/flood_garbage.lua" <<LUA
dofile("$WORK/flood_common.lua")
request = function()
    return wrk.format("GET", "/api/example", { Authorization = "Bearer ak_" .. random_string(39) })
end
LUA
    cat >"$WORK/flood_opaque.lua" <<LUA
dofile("$WORK/flood_common.lua")
request = function()
    -- POST: the route that accepts OAuth tokens (GET /api/example takes API keys only, so an
    -- opaque token would be refused there before any verifier).
    return wrk.format("POST", "/api/example", { Authorization = "Bearer r" .. random_string(40) })
end
LUA
    cat >"$WORK/flood_clerk.lua" <<LUA
dofile("$WORK/flood_common.lua")
request = function()
    return wrk.format("GET", "/api/example", { Authorization = "Bearer ak_" .. random_string(40) })
end
LUA
    cat >"$WORK/flood_forged.lua" <<LUA
dofile("$WORK/flood_common.lua")
local keys, next_key = {}, 1
function init_kind(args)
    for line in io.lines("$WORK/forged.txt") do keys[#keys + 1] = line end
end
request = function()
    local key = keys[next_key]
    next_key = next_key % #keys + 1
    return wrk.format("GET", "/api/example", { Authorization = "Bearer " .. key })
end
LUA
}

start_backends() {
    (cd "$WORK" && exec "$BACKENDS" 127.0.0.1:0 "$DELAY_MS" >"$WORK/backends.out" 2>"$WORK/backends.err") &
    BACKENDS_PID=$!
    wait_ready backends "$BACKENDS_PID"
    BACKENDS_URL="$(printed 'listening on' backends)"
    CLERK_KEY="$(printed 'known clerk key:' backends)"
}

start_server() { # name args...: the example server, in $WORK, on a free port
    local name="$1"
    shift
    (cd "$WORK" && RUST_LOG=error exec "$SERVER" --addr 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err") &
    SERVER_PID=$!
    wait_ready "$name" "$SERVER_PID"
    BASE="$(printed 'tokengate example server listening on' "$name")"
}

check() { # method token expected-status
    local status
    status="$(curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "Authorization: Bearer $2" "$BASE/api/example")"
    [ "$status" = "$3" ] || { echo "$1 /api/example answered $status, expected $3" >&2; exit 1; }
}

legit() { # key: wrk with the cached key for DURATION; prints "requests/s p99"
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$1" >"$WORK/legit.lua"
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/legit.lua" "$BASE/api/example" >"$WORK/legit.txt"
    local rps p99
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$WORK/legit.txt")"
    p99="$(awk '$1 == "99%" {print $2}' "$WORK/legit.txt")"
    local non2xx
    non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$WORK/legit.txt")"
    [ -z "$non2xx" ] || { echo "the legitimate key was refused $non2xx times" >&2; exit 1; }
    echo "$rps $p99"
}

backend_calls() { # the calls the stand-in received: "introspection clerk"
    curl -s "$BACKENDS_URL/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["introspection"]["calls"], s["clerk"]["calls"], s["introspection"]["max_in_flight"], s["clerk"]["max_in_flight"])'
}

# measure kind key: one row of the table.
measure() {
    local kind="$1" key="$2" alone during before after
    alone="$(legit "$key")"
    before="$(backend_calls)"
    # The flood starts a second before the legitimate traffic and ends a second after it.
    wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_EACH + 2))s" -s "$WORK/flood_$kind.lua" "$BASE" >"$WORK/flood.txt" &
    local flood_pid=$!
    sleep 1
    during="$(legit "$key")"
    wait "$flood_pid"
    after="$(backend_calls)"
    python3 - "$kind" "$alone" "$during" "$WORK/flood.txt" "$before" "$after" "$((SECONDS_EACH + 2))" <<'PY'
import sys
kind, alone, during, flood_file, before, after, seconds = sys.argv[1:8]
a_rps, a_p99 = alone.split()
d_rps, d_p99 = during.split()
text = open(flood_file).read()
flood_rps = next(l.split()[1] for l in text.splitlines() if l.startswith("Requests/sec:"))
statuses = {int(l.split()[1]): int(l.split()[2]) for l in text.splitlines() if l.startswith("status ")}
answers = ", ".join(f"{n:,} × {s}" for s, n in sorted(statuses.items()))
b, a = [int(x) for x in before.split()], [int(x) for x in after.split()]
calls = {"opaque": a[0] - b[0], "clerk": a[1] - b[1]}
peak = {"opaque": a[2], "clerk": a[3]}
if kind in calls:
    cost = f"{calls[kind]:,} calls ({calls[kind] / float(seconds):,.0f}/s), at most {peak[kind]} in flight"
elif kind == "forged":
    cost = f"{statuses.get(401, 0):,} store queries (the 401s)"
else:
    cost = "none"
change = 100 * (float(d_rps) / float(a_rps) - 1)
print(f"| {kind} | {float(a_rps):,.0f} | {float(d_rps):,.0f} | {change:+.1f} % | {a_p99} | {d_p99}"
      f" | {float(flood_rps):,.0f} | {answers} | {cost} |")
PY
}

write_scripts
start_backends
echo "wrk: legitimate traffic -t1 -c$CONNECTIONS, flood -t1 -c$CONNECTIONS, $DURATION each; backends answer after ${DELAY_MS} ms"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1); $(rustc --version)"
echo
echo "| flood | legit req/s alone | legit req/s during flood | change | legit p99 alone | during | flood req/s | flood answers | backend cost of the flood |"
echo "|---|---|---|---|---|---|---|---|---|"

DEV_KINDS=""
for kind in $KINDS; do [ "$kind" = clerk ] || DEV_KINDS="$DEV_KINDS $kind"; done
if [ -n "$DEV_KINDS" ]; then
    case " $DEV_KINDS " in *" forged "*) "$BACKENDS" --forge "$FORGED" >"$WORK/forged.txt" ;; esac
    start_server dev --database "sqlite://$WORK/flood.db" --oauth-introspection-url "$BACKENDS_URL/introspect" \
        --oauth-client-id bench --oauth-client-secret bench
    API_KEY="$(printed 'demo API key (write:users):' dev)"
    check GET "$API_KEY" 200
    check POST known-token 200 # introspection is on
    for kind in $DEV_KINDS; do measure "$kind" "$API_KEY"; done
    stop_server
fi
case " $KINDS " in
    *" clerk "*)
        # A production key: the production call budget (50 calls a second, 5 per client).
        start_server clerk --database "sqlite://$WORK/clerk.db" --clerk-secret-key sk_live_floodBenchSecretKey0123456789 \
            --clerk-api-url "$BACKENDS_URL"
        check GET "$CLERK_KEY" 200
        measure clerk "$CLERK_KEY"
        stop_server
        ;;
esac

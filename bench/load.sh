#!/usr/bin/env bash
# Load test of the example server over loopback with wrk: requests/s and p99 latency of the
# unguarded route and of each guarded route, in one run.
#
#   bench/load.sh                 # 10 s per route, 2 threads, 32 connections
#   DURATION=5s CONNECTIONS=64 bench/load.sh
#   PAIR_ROUNDS=40 bench/load.sh  # more rounds of the guarded/unguarded pair (3 s each)
#   PAIR_ONLY=1 LAYOUTS=shared bench/load.sh   # only the pair test, in one layout
#   BENCH_SERVER=/tmp/old_bench_server PAIR_ONLY=1 bench/load.sh   # the pair test of another build
#
# Installs wrk with apt-get when it is missing. Builds the example server in release mode,
# starts it in development mode in a temporary directory on a free loopback port, reads the
# demo credentials it prints, runs wrk against each route, prints one table and stops the
# server. The server and wrk run on the same machine and share its cores: the numbers are a
# lower bound for the server alone.
set -euo pipefail

DURATION="${DURATION:-10s}"
PAIR_ROUNDS="${PAIR_ROUNDS:-10}"
PAIR_DURATION="${PAIR_DURATION:-3s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
LAYOUTS="${LAYOUTS:-shared split}"
for layout in $LAYOUTS; do
    case "$layout" in
        shared | split) ;;
        *) echo "unknown layout '$layout' in LAYOUTS; use shared, split or both" >&2; exit 2 ;;
    esac
done
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_installed wrk
build_examples api_server bench_server
SERVER="$TARGET_DIR/release/examples/api_server"
BENCH_SERVER="${BENCH_SERVER:-$TARGET_DIR/release/examples/bench_server}"
[ -x "$BENCH_SERVER" ] || { echo "BENCH_SERVER=$BENCH_SERVER is not an executable file" >&2; exit 2; }

WORK="$(mktemp -d)"
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

printed() { # the value printed after a label at start-up
    sed -n "s/^$1[[:space:]]*//p" "$WORK/server.out" | head -n1
}

check() { # method path token expected-status
    local status
    status="$(curl -s -o /dev/null -w '%{http_code}' -X "$1" -H "Authorization: Bearer $3" "$BASE$2")"
    [ "$status" = "$4" ] || { echo "$1 $2 answered $status, expected $4" >&2; exit 1; }
}

example_routes() { # the example server's routes, one wrk run each
    # Port 0: the server picks a free port and prints it.
    (cd "$WORK" && RUST_LOG=warn exec "$SERVER" --addr 127.0.0.1:0 --database "sqlite://$WORK/load.db" \
        >"$WORK/server.out" 2>"$WORK/server.err") &
    SERVER_PID=$!
    wait_ready

    BASE="$(printed 'tokengate example server listening on')"
    API_KEY="$(printed 'demo API key (write:users):')"
    M2M="$(printed 'demo M2M token (write:users):')"
    SESSION="$(printed 'dev session token (1 hour):')"
    for v in BASE API_KEY M2M SESSION; do
        [ -n "${!v}" ] || { echo "could not read $v from the server's output" >&2; exit 1; }
    done

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
}

# The guard alone: one handler, unguarded and behind #[accepts_token(api_key)] (examples/bench_server.rs).
# Both routes get the same Authorization header, so the guard is the only difference. One run
# of each is not enough on a shared machine (back-to-back runs of the same route differ by up
# to ±10 %): PAIR_ROUNDS rounds, in ABBA order to cancel drift, then the median and mean gap
# with a 95 % confidence interval, and the server's own CPU time per request (user and
# kernel, from /proc) for each route. Two layouts:
# - shared: server and wrk on all cores, as above;
# - split: the server on the first half of the cores (one Tokio worker per core) and wrk on the
#   other half, so the load generator neither takes the server's CPU nor makes the server's
#   kernel pay for waking it (what a server with remote clients sees).
TICKS="$(getconf CLK_TCK)"
CORES="$(nproc)"
pair_test() { # layout
    local server_cpus="" client_cpus="" client_threads="$THREADS" workers="" round open guarded
    if [ "$1" = split ]; then
        local half=$((CORES / 2))
        [ "$half" -ge 1 ] || { echo "the split layout needs 2 cores or more" >&2; return 0; }
        server_cpus="0-$((half - 1))"
        client_cpus="$half-$((CORES - 1))"
        workers="$half"
        client_threads="$((CORES - half))"
    fi
    (
        cd "$WORK"
        if [ -n "$server_cpus" ]; then
            TOKIO_WORKER_THREADS="$workers" exec taskset -c "$server_cpus" "$BENCH_SERVER" 127.0.0.1:0
        else
            exec "$BENCH_SERVER" 127.0.0.1:0
        fi
    ) >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    wait_ready
    BASE="$(printed 'listening on')"
    API_KEY="$(printed 'api key:')"
    check GET /open "$API_KEY" 200
    check GET /guarded "$API_KEY" 200
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$API_KEY" >"$WORK/pair.lua"
    pair_run() { # path -> "requests/s p99 requests user_ticks sys_ticks"
        local out u0 s0 u1 s1 pin=()
        [ -z "$client_cpus" ] || pin=(taskset -c "$client_cpus")
        read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
        out="$("${pin[@]}" wrk -t"$client_threads" -c"$CONNECTIONS" -d"$PAIR_DURATION" --latency \
            -s "$WORK/pair.lua" "$BASE$1")"
        read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
        echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") $(awk '$1 == "99%" {print $2}' <<<"$out")" \
            "$(awk '/requests in/ {print $1}' <<<"$out") $((u1 - u0)) $((s1 - s0))"
    }
    pair_run /guarded >/dev/null # warm-up: the key is read from the store once, then cached
    : >"$WORK/pairs"
    for round in $(seq 1 "$PAIR_ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then
            open="$(pair_run /open)"; guarded="$(pair_run /guarded)"
        else
            guarded="$(pair_run /guarded)"; open="$(pair_run /open)"
        fi
        echo "$open $guarded" >>"$WORK/pairs"
    done
    stop_server
    echo
    if [ "$1" = split ]; then
        echo "The same handler unguarded and guarded, split layout: server on cores $server_cpus ($workers Tokio worker(s)), wrk on cores $client_cpus ($client_threads thread(s)); $PAIR_ROUNDS rounds of $PAIR_DURATION, ABBA order:"
    else
        echo "The same handler unguarded and guarded (examples/bench_server.rs), shared layout: server and wrk on all $CORES cores; $PAIR_ROUNDS rounds of $PAIR_DURATION, ABBA order:"
    fi
    echo
    python3 - "$WORK/pairs" "$TICKS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
ticks = float(sys.argv[2])
def per_request(n, t):  # µs of server CPU per request
    return float(t) / ticks * 1e6 / float(n)
def ms(latency):  # wrk prints 850.00us, 1.20ms, 2.00s
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if latency.endswith(unit):
            return float(latency[: -len(unit)]) * scale
    return float("nan")
gaps, open_rps, guarded_rps, cpu = [], [], [], {"open": ([], []), "guarded": ([], [])}
p99 = {"open": [], "guarded": []}
for o_rps, o_p99, o_n, o_u, o_s, g_rps, g_p99, g_n, g_u, g_s in rows:
    open_rps.append(float(o_rps)); guarded_rps.append(float(g_rps))
    p99["open"].append(ms(o_p99)); p99["guarded"].append(ms(g_p99))
    gaps.append(100 * (1 - float(g_rps) / float(o_rps)))
    cpu["open"][0].append(per_request(o_n, o_u)); cpu["open"][1].append(per_request(o_n, o_s))
    cpu["guarded"][0].append(per_request(g_n, g_u)); cpu["guarded"][1].append(per_request(g_n, g_s))
print("| route | requests/s (median) | p99 (median) | server CPU per request, user (median) | kernel (median) |")
print("|---|---|---|---|---|")
for name, rps in (("GET /open (unguarded)", open_rps), ("GET /guarded (API key, cached)", guarded_rps)):
    key = "open" if "open" in name else "guarded"
    print(f"| {name} | {statistics.median(rps):,.0f} | {statistics.median(p99[key]):.2f} ms"
          f" | {statistics.median(cpu[key][0]):.2f} µs"
          f" | {statistics.median(cpu[key][1]):.2f} µs |")
mean = statistics.mean(gaps)
half = 1.96 * statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else float("nan")
added_user = [g - o for g, o in zip(cpu["guarded"][0], cpu["open"][0])]
print()
print("per round, guard cost in throughput: " + ", ".join(f"{g:.1f} %" for g in gaps))
print(f"guard cost under load: median {statistics.median(gaps):.1f} %, mean {mean:.1f} % "
      f"(95 % confidence interval {mean - half:.1f} % to {mean + half:.1f} %) of the unguarded throughput")
print(f"server user CPU added by the guard: median {statistics.median(added_user):.2f} µs per request")
PY
}

[ -n "${PAIR_ONLY:-}" ] || example_routes
for layout in $LAYOUTS; do pair_test "$layout"; done

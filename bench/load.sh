#!/usr/bin/env bash
# Load test of the example server over loopback with wrk: requests/s and p99 latency of the
# unguarded route and of each guarded route, in one run.
#
#   bench/load.sh                 # 10 s per route, 2 threads, 32 connections
#   DURATION=5s CONNECTIONS=64 bench/load.sh
#   PAIR_ROUNDS=40 bench/load.sh  # more rounds of the guarded/unguarded pair (3 s each)
#   PAIR_ONLY=1 LAYOUTS=shared bench/load.sh   # only the pair test, in one layout
#   BENCH_SERVER=/tmp/old_bench_server PAIR_ONLY=1 bench/load.sh   # the pair test of another build
#   PAIR_ONLY=1 LAYOUTS=concurrent PAIR_ROUNDS=30 bench/load.sh    # two servers side by side
#   CONTROL=1 PAIR_ONLY=1 LAYOUTS=concurrent bench/load.sh         # the same, /open against /open
#
# Installs wrk with apt-get when it is missing. Builds the example server in release mode,
# starts it in development mode in a temporary directory on a free loopback port, reads the
# demo credentials it prints, runs wrk against each route, prints one table and stops the
# server. The server and wrk run on the same machine and share its cores: the numbers are a
# lower bound for the server alone. Then the guard alone, one handler unguarded and guarded, in
# three layouts (shared, split, concurrent: see pair_test and concurrent_test below); on a
# machine whose speed drifts (a shared virtual machine), the concurrent layout is the one that
# compares the routes at the same moments: its runs agree within about a point.
set -euo pipefail

DURATION="${DURATION:-10s}"
PAIR_ROUNDS="${PAIR_ROUNDS:-10}"
PAIR_DURATION="${PAIR_DURATION:-3s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
LAYOUTS="${LAYOUTS:-shared split concurrent}"
for layout in $LAYOUTS; do
    case "$layout" in
        shared | split | concurrent) ;;
        *) echo "unknown layout '$layout' in LAYOUTS; use shared, split, concurrent or several of them" >&2; exit 2 ;;
    esac
done
whole() { # name value: the value as a number, or a message and exit when it is not a whole number
    case "$2" in
        "" | *[!0-9]*) echo "$1 must be a whole number (got '$2')" >&2; exit 2 ;;
    esac
    echo $((10#$2))
}
PAIR_ROUNDS="$(whole PAIR_ROUNDS "$PAIR_ROUNDS")"
THREADS="$(whole THREADS "$THREADS")"
CONNECTIONS="$(whole CONNECTIONS "$CONNECTIONS")"
[ "$PAIR_ROUNDS" -ge 2 ] || { echo "PAIR_ROUNDS must be 2 or more: the rounds are compared in pairs" >&2; exit 2; }
[ "$THREADS" -ge 1 ] || { echo "THREADS must be 1 or more" >&2; exit 2; }
[ "$CONNECTIONS" -ge "$THREADS" ] && [ "$CONNECTIONS" -ge 2 ] ||
    { echo "CONNECTIONS must be 2 or more and at least THREADS ($THREADS): wrk gives each thread its own connections" >&2; exit 2; }
case " $LAYOUTS " in
    *" concurrent "*)
        [ $((PAIR_ROUNDS % 2)) -eq 0 ] ||
            { echo "PAIR_ROUNDS must be even with the concurrent layout: its rounds are compared in pairs (got $PAIR_ROUNDS)" >&2; exit 2; }
        ;;
esac
case "${CONTROL:-}" in
    "" | 0 | 1) ;;
    *) echo "CONTROL must be 1 (the concurrent layout measures /open against /open) or unset" >&2; exit 2 ;;
esac
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_installed wrk
build_examples api_server bench_server
SERVER="$TARGET_DIR/release/examples/api_server"
BENCH_SERVER="${BENCH_SERVER:-$TARGET_DIR/release/examples/bench_server}"
[ -x "$BENCH_SERVER" ] || { echo "BENCH_SERVER=$BENCH_SERVER is not an executable file" >&2; exit 2; }

WORK="$(mktemp -d)"
SECOND_PID="" # the concurrent layout's second server
stop_second() {
    stop_process "$SECOND_PID"
    SECOND_PID=""
}
cleanup() {
    stop_server
    stop_second
    # Any wrk still running (the script was interrupted during a round).
    local pids
    pids="$(jobs -p)"
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # [name pid]: waits for the server whose output is $WORK/name.out (default: server)
    local name="${1:-server}" pid="${2:-$SERVER_PID}"
    for _ in $(seq 1 300); do
        grep -qx ready "$WORK/$name.out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; echo "the server exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not get ready" >&2
    exit 1
}

printed() { # label [name]: the value printed after a label at start-up
    sed -n "s/^$1[[:space:]]*//p" "$WORK/${2:-server}.out" | head -n1
}

fields() { # how many words it is given
    echo "$#"
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

# summarize FILE LAYOUT: the table and the guard's cost from the rounds in FILE, one line per
# round: requests/s, p99, requests and the server's user and kernel ticks for /open, then the
# same for /guarded. Sequential layouts: the interval is over rounds. Concurrent layout: over
# pairs of rounds (each pair has both servers on both routes, so what differs between the two
# processes cancels out in it).
summarize() {
    python3 - "$1" "$TICKS" "$2" "${CONTROL:-0}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
ticks = float(sys.argv[2])
concurrent = sys.argv[3] == "concurrent"
control = concurrent and sys.argv[4] == "1"  # /open on both sides: the method's own bias
def per_request(n, t):  # µs of server CPU per request
    return float(t) / ticks * 1e6 / float(n)
def ms(latency):  # wrk prints 850.00us, 1.20ms, 2.00s
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if latency.endswith(unit):
            return float(latency[: -len(unit)]) * scale
    return float("nan")
gaps, cpu_gaps, open_rps, guarded_rps, cpu = [], [], [], [], {"open": ([], []), "guarded": ([], [])}
p99 = {"open": [], "guarded": []}
for o_rps, o_p99, o_n, o_u, o_s, g_rps, g_p99, g_n, g_u, g_s in rows:
    open_rps.append(float(o_rps)); guarded_rps.append(float(g_rps))
    p99["open"].append(ms(o_p99)); p99["guarded"].append(ms(g_p99))
    gaps.append(100 * (1 - float(g_rps) / float(o_rps)))
    cpu["open"][0].append(per_request(o_n, o_u)); cpu["open"][1].append(per_request(o_n, o_s))
    cpu["guarded"][0].append(per_request(g_n, g_u)); cpu["guarded"][1].append(per_request(g_n, g_s))
    open_total = per_request(o_n, int(o_u) + int(o_s))
    guarded_total = per_request(g_n, int(g_u) + int(g_s))
    cpu_gaps.append(100 * (guarded_total / open_total - 1))
print("| route | requests/s (median) | p99 (median) | server CPU per request, user (median) | kernel (median) |")
print("|---|---|---|---|---|")
second = "GET /open on the other server (CONTROL=1)" if control else "GET /guarded (API key, cached)"
for key, name, rps in (("open", "GET /open (unguarded)", open_rps), ("guarded", second, guarded_rps)):
    print(f"| {name} | {statistics.median(rps):,.0f} | {statistics.median(p99[key]):.2f} ms"
          f" | {statistics.median(cpu[key][0]):.2f} µs"
          f" | {statistics.median(cpu[key][1]):.2f} µs |")
# Student's t, two-sided 95 %, by degrees of freedom (beyond 30: within 0.01 of the table).
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
def t95(df):
    return T95[df - 1] if df <= len(T95) else 1.96 + 2.4 / df
def units(values):  # what the statistics are taken over
    if concurrent:  # pairs of rounds: each pair has both servers on both routes
        return [(a + b) / 2 for a, b in zip(values[0::2], values[1::2])]
    return values
def interval(values):  # the median and mean, and the mean's 95 % confidence interval as text
    values = units(values)
    mean = statistics.mean(values)
    over = "pairs of rounds" if concurrent else "rounds"
    if len(values) < 2:
        return statistics.median(values), mean, "no confidence interval from a single pair of rounds; raise PAIR_ROUNDS"
    half = t95(len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return statistics.median(values), mean, f"95 % confidence interval {mean - half:.1f} % to {mean + half:.1f} %, over {over}"
added_user = [g - o for g, o in zip(cpu["guarded"][0], cpu["open"][0])]
print()
print("per round, guard cost in throughput: " + ", ".join(f"{g:.1f} %" for g in gaps))
median, mean, spread = interval(gaps)
print(f"guard cost under load: median {median:.1f} %, mean {mean:.1f} % "
      f"({spread}) of the unguarded throughput")
median, mean, spread = interval(cpu_gaps)
print(f"server CPU per request (user and kernel) added by the guard: median {median:.1f} %, "
      f"mean {mean:.1f} % ({spread})")
print(f"server user CPU added by the guard: median {statistics.median(units(added_user)):.2f} µs per request")
PY
}

# The guard alone: one handler, unguarded and behind #[accepts_token(api_key)] (examples/bench_server.rs).
# Both routes get the same Authorization header, so the guard is the only difference. One run
# of each is not enough on a shared machine (back-to-back runs of the same route differ by up
# to ±20 %): PAIR_ROUNDS rounds, in ABBA order to cancel drift, then the median and mean gap
# with a 95 % confidence interval, and the server's own CPU time per request (user and
# kernel, from /proc) for each route. Two layouts here, a third (concurrent) below:
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
        # shellcheck disable=SC2086 # counting the fields
        [ "$(fields $open $guarded)" -eq 10 ] || { echo "could not read a round's wrk output: $open $guarded" >&2; exit 1; }
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
    summarize "$WORK/pairs" "$1"
}

# The concurrent layout: two servers at once, both on the first half of the cores (one Tokio
# worker per core each), and two wrk processes on the other half, CONNECTIONS/2 connections
# each. In every round one server serves /open and the other /guarded, at the same moments;
# they swap routes every round, so a difference between the two processes cancels out over each
# pair of rounds. The scheduler gives two busy servers on the same cores equal shares of them,
# so each one's throughput is its share over its CPU time per request, and whatever else the
# machine does during a round slows both alike: sequential rounds (the other layouts) compare
# moments the host made faster or slower, this one does not. CONTROL=1 serves /open on both
# sides: the method's own bias, which should be 0 within its interval.
concurrent_test() {
    local half=$((CORES / 2))
    [ "$half" -ge 1 ] || { echo "the concurrent layout needs 2 cores or more" >&2; return 0; }
    local server_cpus="0-$((half - 1))" client_cpus="$half-$((CORES - 1))"
    local client_threads=$(((CORES - half) / 2)) connections=$((CONNECTIONS / 2)) guarded_path=/guarded
    [ "$client_threads" -ge 1 ] || client_threads=1
    [ "$connections" -ge "$client_threads" ] || connections="$client_threads"
    [ "${CONTROL:-0}" != 1 ] || guarded_path=/open
    start() { # name
        (cd "$WORK" && TOKIO_WORKER_THREADS="$half" exec taskset -c "$server_cpus" "$BENCH_SERVER" 127.0.0.1:0) \
            >"$WORK/$1.out" 2>"$WORK/$1.err" &
    }
    start first
    SERVER_PID=$!
    start second
    SECOND_PID=$!
    wait_ready first "$SERVER_PID"
    wait_ready second "$SECOND_PID"
    local name base key
    declare -A BASES PIDS=([first]="$SERVER_PID" [second]="$SECOND_PID")
    for name in first second; do
        base="$(printed 'listening on' "$name")"
        key="$(printed 'api key:' "$name")"
        [ -n "$base" ] && [ -n "$key" ] || { echo "could not read the $name server's address and key" >&2; exit 1; }
        BASES[$name]="$base"
        BASE="$base"
        check GET /open "$key" 200
        check GET /guarded "$key" 200
        printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$key" >"$WORK/$name.lua"
    done
    cpu_ticks() { # name -> "user_ticks sys_ticks"
        awk '{print $14, $15}' "/proc/${PIDS[$1]}/stat"
    }
    load() { # name path output
        taskset -c "$client_cpus" wrk -t"$client_threads" -c"$connections" -d"$PAIR_DURATION" --latency \
            -s "$WORK/$1.lua" "${BASES[$1]}$2" >"$3"
    }
    side_by_side() { # open-side guarded-side -> one line: "open: rps p99 n user sys  guarded: …"
        local ou0 os0 gu0 gs0 ou1 os1 gu1 gs1 a b
        read -r ou0 os0 < <(cpu_ticks "$1")
        read -r gu0 gs0 < <(cpu_ticks "$2")
        load "$1" /open "$WORK/open.wrk" &
        a=$!
        load "$2" "$guarded_path" "$WORK/guarded.wrk" &
        b=$!
        wait "$a"
        wait "$b"
        read -r ou1 os1 < <(cpu_ticks "$1")
        read -r gu1 gs1 < <(cpu_ticks "$2")
        summary() { # wrk output file
            echo "$(awk '/^Requests\/sec:/ {print $2}' "$1") $(awk '$1 == "99%" {print $2}' "$1")" \
                "$(awk '/requests in/ {print $1}' "$1")"
        }
        local row
        row="$(summary "$WORK/open.wrk") $((ou1 - ou0)) $((os1 - os0)) $(summary "$WORK/guarded.wrk") $((gu1 - gu0)) $((gs1 - gs0))"
        # shellcheck disable=SC2086 # counting the fields
        [ "$(fields $row)" -eq 10 ] || { echo "could not read a round's wrk output: $row" >&2; exit 1; }
        echo "$row"
    }
    # Warm-up: each server reads the key from its store once, then caches it.
    side_by_side first second >/dev/null
    side_by_side second first >/dev/null
    : >"$WORK/pairs"
    local round
    for round in $(seq 1 "$PAIR_ROUNDS"); do
        if [ $((round % 2)) -eq 1 ]; then
            side_by_side first second >>"$WORK/pairs"
        else
            side_by_side second first >>"$WORK/pairs"
        fi
    done
    stop_server
    stop_second
    echo
    local against="/guarded"
    [ "${CONTROL:-0}" != 1 ] || against="/open (CONTROL=1: the method's own bias)"
    echo "The same handler unguarded and guarded, concurrent layout: two servers at once on cores $server_cpus ($half Tokio worker(s) each), one serving /open and the other $against, two wrk on cores $client_cpus ($client_threads thread(s), $connections connections each); the servers swap routes every round; $PAIR_ROUNDS rounds of $PAIR_DURATION:"
    echo
    summarize "$WORK/pairs" concurrent
}

[ -n "${PAIR_ONLY:-}" ] || example_routes
for layout in $LAYOUTS; do
    if [ "$layout" = concurrent ]; then concurrent_test; else pair_test "$layout"; fi
done

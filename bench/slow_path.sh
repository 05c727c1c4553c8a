#!/usr/bin/env bash
# The slow paths of the example server on a large key table (BENCHMARKS.md, "The slow path"):
#
#   start-up   time to the listening line (database open and migrated) and to the demo keys
#              (development mode finds the previous ones by name, revokes them and issues new
#              ones: six committed writes), the medians of STARTS start-ups (default 9) of
#              each, alternating, and RSS, on an empty database and on one with KEYS keys
#              under the demo user
#   memory     RSS after 100 000 distinct keys were each verified once (MEMORY_KEYS)
#   throughput ROUNDS rounds (default 3), each: GET /api/example with one reused key, POST
#              /api/example (an indexed query of the users table) with the same key, then GET
#              with every request a different key (none cached: the keys go round all KEYS, more
#              than the cache holds), in no particular order (a fixed shuffle of the secrets,
#              as a service's long tail of keys is used). The medians of the requests/s and of the rounds' ratios: the machine
#              moves by a fifth between runs minutes apart, a round's rows are seconds apart.
#              POST runs right after GET, before the new keys, whose last_used_at writes would
#              still be running behind it. Also the server's CPU per request, split between
#              its busiest thread (the request path) and the others (the last_used_at writer).
#
#   bench/slow_path.sh                       # 300 000 keys, 3 rounds of 5 s per measurement
#   KEYS=200000 MEMORY_KEYS=50000 DURATION=10s ROUNDS=5 bench/slow_path.sh
#
# The server runs on core 0 and wrk (one thread, CONNECTIONS connections, default 8) on core
# 1, with taskset. wrk is one client: more than 8 connections would meet the key verifier's
# bound of 8 store lookups in flight per client and get 503s for new keys (SECURITY.md, Floods). Installs wrk with apt-get when it is missing; builds the example server and
# examples/bench_keys.rs (which writes the keys and prints their secrets) in release mode.
set -euo pipefail

KEYS="${KEYS:-300000}"
MEMORY_KEYS="${MEMORY_KEYS:-100000}"
DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-8}"
STARTS="${STARTS:-9}"
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_whole KEYS MEMORY_KEYS CONNECTIONS STARTS ROUNDS
[ "$STARTS" -ge 1 ] || { echo "STARTS must be at least 1" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 2; }
require_seconds DURATION
[ "$MEMORY_KEYS" -lt "$KEYS" ] || { echo "MEMORY_KEYS ($MEMORY_KEYS) must be less than KEYS ($KEYS)" >&2; exit 2; }
# The key verifier caches 100 000 keys: with fewer keys than that to go round, "a new key each
# request" finds many of them cached.
[ "$KEYS" -gt 100000 ] || echo "note: KEYS ($KEYS) is within the key cache (100 000): the new-key rounds hit it" >&2

ensure_installed wrk
build_examples api_server bench_keys
SERVER="$TARGET_DIR/release/examples/api_server"
FILL="$TARGET_DIR/release/examples/bench_keys"

WORK="$(mktemp -d)"
cleanup() {
    stop_server
    local pids
    pids="$(jobs -p)"
    [ -z "$pids" ] || kill $pids 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# median numbers...
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# ratio a b: a / b, two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }

# start name database: the server in development mode on core 0, ready when it has printed
# its address and demo key; sets BASE, KEY and STARTUP ("ms-to-listening ms-to-ready
# RSS-in-MB"). The server listens once its database is open and migrated; development mode
# then revokes the previous demo keys and issues new ones (committed writes: fsync) before it
# prints them. Its output comes through a FIFO read line by line, each line timed as it
# arrives ($EPOCHREALTIME: no polling, no process started per look), then copied to
# $name.out by a cat that keeps draining the FIFO while the server runs.
start() {
    local name="$1" database="$2" started listening="" ready="" line fd
    rm -f "$WORK/$name.fifo" && mkfifo "$WORK/$name.fifo"
    : >"$WORK/$name.out"
    started=${EPOCHREALTIME//[!0-9]/}
    (cd "$WORK" && RUST_LOG=error exec taskset -c 0 "$SERVER" --addr 127.0.0.1:0 --database "sqlite://$database" \
        >"$WORK/$name.fifo" 2>"$WORK/$name.err") &
    SERVER_PID=$!
    exec {fd}<"$WORK/$name.fifo"
    while IFS= read -r -t 30 -u "$fd" line; do
        printf '%s\n' "$line" >>"$WORK/$name.out"
        case "$line" in
            "tokengate example server listening on"*) listening=${EPOCHREALTIME//[!0-9]/} ;;
            "demo API key (write:users):"*) ready=${EPOCHREALTIME//[!0-9]/} && break ;;
        esac
    done
    cat <&"$fd" >>"$WORK/$name.out" &
    exec {fd}<&-
    [ -n "$listening" ] && [ -n "$ready" ] ||
        { cat "$WORK/$name.err" >&2; echo "the server printed no address or demo key within 30 s" >&2; exit 1; }
    BASE="$(sed -n 's/^tokengate example server listening on[[:space:]]*//p' "$WORK/$name.out" | head -n1)"
    KEY="$(sed -n 's/^demo API key (write:users):[[:space:]]*//p' "$WORK/$name.out" | head -n1)"
    STARTUP="$(ms_between "$started" "$listening") $(ms_between "$started" "$ready") $(rss_mb)"
}

# ms_between a b: milliseconds from microsecond a to b ($EPOCHREALTIME without its decimal
# point, whichever the locale's), one decimal.
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1000}'; }

# Lua: each request another key of the secrets file from line FIRST on; stops after COUNT
# answers when COUNT > 0 (the memory phase), counts non-200 answers.
write_keys_script() {
    cat >"$WORK/keys.lua" <<LUA
local keys, next_key, answered, bad = {}, 1, 0, 0
local first, count = tonumber(os.getenv("FIRST")), tonumber(os.getenv("COUNT"))
for line in io.lines("$WORK/secrets.txt") do keys[#keys + 1] = line end
next_key = first
request = function()
    local key = keys[next_key]
    next_key = next_key + 1
    if next_key > #keys then next_key = 1 end
    return wrk.format("GET", "/api/example", { Authorization = "Bearer " .. key })
end
response = function(status)
    answered = answered + 1
    if status ~= 200 then bad = bad + 1 end
    if count > 0 and answered >= count then wrk.thread:stop() end
end
done = function() end
LUA
}

# run wrk-args...: wrk on core 1; prints "requests/s non-2xx requests"
run() {
    local out="$WORK/wrk.txt"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" "$@" >"$out"
    local rps non2xx total
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"
    total="$(awk '/ requests in / {print $1}' "$out")"
    [ -n "$rps" ] && [ -n "$total" ] || { cat "$out" >&2; echo "wrk measured nothing" >&2; return 1; }
    echo "${rps%.*} ${non2xx:-0} ${total:-0}"
}

# settle: waits (30 s at most) until the server has used under 2 % of its core for half a
# second: the last_used_at writes a new-key run leaves behind run on the server's core and
# would count against whatever is measured next.
settle() {
    local before after
    for _ in $(seq 1 60); do
        before="$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")"
        sleep 0.5
        after="$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")"
        [ $((after - before)) -le 1 ] && return 0
    done
    echo "the server was still busy after 30 s; measuring anyway" >&2
}

# thread_ticks: "tid ticks" for each of the server's threads (user + system, in clock ticks).
thread_ticks() {
    local task
    for task in /proc/"$SERVER_PID"/task/*; do
        printf '%s %s\n' "${task##*/}" "$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)"
    done | sort
}

# cpu_per_request before after requests: the server's CPU per request in µs, "total busiest
# others": the busiest thread is the runtime's one worker (the server has one core), the others
# are blocking threads, where the last_used_at writes run. A thread born between the two
# snapshots counts from zero.
cpu_per_request() {
    join -a 2 -e 0 -o 0,1.2,2.2 <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
        awk -v n="$3" -v hz="$(getconf CLK_TCK)" '
            { d = $3 - $2; total += d; if (d > top) top = d }
            END { f = 1e6 / hz / n; printf "%.1f %.1f %.1f", total * f, top * f, (total - top) * f }'
}

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1); $(rustc --version)"
echo "keys: $KEYS, used in random order; wrk -t1 -c$CONNECTIONS, $DURATION per measurement; server on core 0, wrk on core 1"
echo

# startups: STARTS start-ups of each database, alternating (the machine drifts by a fifth
# within minutes: alternating gives both the same drift), after one uncounted start-up of each
# (the first creates the empty database's file and both warm the operating system's caches);
# sets EMPTY and LARGE ("median-ms-to-listening median-ms-to-ready last-RSS-in-MB") and leaves
# the server running on the large database.
startups() {
    local empty_l=() empty_r=() large_l=() large_r=() i l r
    for i in $(seq 0 "$STARTS"); do
        start empty "$WORK/empty.db"
        read -r l r EMPTY_RSS <<<"$STARTUP"
        [ "$i" -eq 0 ] || empty_l+=("$l") empty_r+=("$r")
        stop_server
        start large "$WORK/large.db"
        read -r l r LARGE_RSS <<<"$STARTUP"
        [ "$i" -eq 0 ] || large_l+=("$l") large_r+=("$r")
        [ "$i" -eq "$STARTS" ] || stop_server
    done
    EMPTY="$(median "${empty_l[@]}") $(median "${empty_r[@]}") $EMPTY_RSS"
    LARGE="$(median "${large_l[@]}") $(median "${large_r[@]}") $LARGE_RSS"
}

"$FILL" "$WORK/large.db" "$KEYS" >"$WORK/secrets.txt"
shuf --random-source=<(yes tokengate) -o "$WORK/secrets.txt" "$WORK/secrets.txt"
startups
read -r empty_l empty_r empty_rss <<<"$EMPTY"
read -r large_l large_r large_rss <<<"$LARGE"
write_keys_script

echo "| start-up (median of $STARTS) | ms to listening | ms to ready (demo keys issued) | RSS at ready |"
echo "|---|---|---|---|"
echo "| empty database | $empty_l | $empty_r | $empty_rss MB |"
echo "| $KEYS keys under the demo user | $large_l | $large_r | $large_rss MB |"
echo "| large / empty | $(ratio "$large_l" "$empty_l")× | $(ratio "$large_r" "$empty_r")× | |"
echo

FIRST=1 COUNT="$MEMORY_KEYS" run -d120s -s "$WORK/keys.lua" "$BASE" >/dev/null
settle
echo "RSS after $MEMORY_KEYS distinct keys verified once each: $(rss_mb) MB (at ready: $large_rss MB)"
echo

printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$KEY" >"$WORK/reused.lua"
printf 'wrk.method = "POST"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$KEY" >"$WORK/post.lua"
reused=() post=() distinct=() post_ratios=() distinct_ratios=() reused_cpu=() distinct_cpu=() bad=0 first=$((MEMORY_KEYS + 1)) rounds=""
for round in $(seq 1 "$ROUNDS"); do
    # One assignment a line: a failed measurement ends the script (set -e).
    ticks="$(thread_ticks)"
    measured="$(run -d"$DURATION" -s "$WORK/reused.lua" "$BASE/api/example")"
    read -r r r_bad r_total <<<"$measured"
    reused_cpu+=("$(cpu_per_request "$ticks" "$(thread_ticks)" "$r_total")")
    measured="$(run -d"$DURATION" -s "$WORK/post.lua" "$BASE/api/example")"
    read -r p p_bad _ <<<"$measured"
    ticks="$(thread_ticks)"
    measured="$(FIRST=$first COUNT=0 run -d"$DURATION" -s "$WORK/keys.lua" "$BASE")"
    read -r d d_bad d_total <<<"$measured"
    first=$(((first - 1 + d_total) % KEYS + 1))
    settle
    # Counted to the end of the settling: the writes behind this round's keys included.
    distinct_cpu+=("$(cpu_per_request "$ticks" "$(thread_ticks)" "$d_total")")
    reused+=("$r") post+=("$p") distinct+=("$d") bad=$((bad + r_bad + p_bad + d_bad))
    post_ratios+=("$(ratio "$p" "$r")") distinct_ratios+=("$(ratio "$d" "$r")")
    rounds+="| $round | $r | $p ($(ratio "$p" "$r")) | $d ($(ratio "$d" "$r")) |"$'\n'
done
reused_m="$(median "${reused[@]}")" post_m="$(median "${post[@]}")" distinct_m="$(median "${distinct[@]}")"
echo "| round | GET, reused key (req/s) | POST, reused key (of GET) | GET, a new key each request (of reused) |"
echo "|---|---|---|---|"
printf '%s' "$rounds"
echo "| **median** (of the requests/s; of each round's ratios) | $reused_m | $post_m (**$(median "${post_ratios[@]}")**) | $distinct_m (**$(median "${distinct_ratios[@]}")**) |"
echo
# cpu_median k triples...: the median of column k of the rounds' "total busiest others"
cpu_median() {
    local k="$1" column
    shift
    mapfile -t column < <(printf '%s\n' "$@" | awk -v k="$k" '{print $k}')
    median "${column[@]}"
}
echo "server CPU per request, medians of the rounds (µs; the busiest thread is the request path, the others write last_used_at):"
echo "| request | total | busiest thread | other threads |"
echo "|---|---|---|---|"
echo "| GET, reused key | $(cpu_median 1 "${reused_cpu[@]}") | $(cpu_median 2 "${reused_cpu[@]}") | $(cpu_median 3 "${reused_cpu[@]}") |"
echo "| GET, a new key each request (to the end of the writes behind it) | $(cpu_median 1 "${distinct_cpu[@]}") | $(cpu_median 2 "${distinct_cpu[@]}") | $(cpu_median 3 "${distinct_cpu[@]}") |"
echo
echo "non-2xx answers in all rounds: $bad"
echo
echo "RSS at the end: $(rss_mb) MB"

# Sourced by .ci/run: installs PostgreSQL if needed, starts a throwaway server on loopback in
# a temporary directory, and exports TOKENGATE_TEST_POSTGRES_URL (plus
# TOKENGATE_REQUIRE_POSTGRES=1, so the PostgreSQL tests fail instead of skipping).
# The server is stopped and its directory deleted when the calling shell exits.

pg_bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    fi
}

PG_BIN=$(pg_bin_dir)
if [ -z "$PG_BIN" ]; then
    echo "== installing PostgreSQL (Debian package \`postgresql\`)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(pg_bin_dir)
fi
if [ -z "$PG_BIN" ]; then
    echo "error: PostgreSQL's initdb/pg_ctl were not found under /usr/lib/postgresql/*/bin after installing" >&2
    exit 1
fi
export TOKENGATE_PG_BIN="$PG_BIN"

# PostgreSQL refuses to run as root: run it as the `postgres` user the package creates.
if [ "$(id -u)" = 0 ]; then
    PG_AS=(runuser -u postgres --)
else
    PG_AS=()
fi

PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-ci-pg.XXXXXX")
if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DIR"; fi
PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

pg_cleanup() {
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap pg_cleanup EXIT

echo "== PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($PG_DIR)"
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; exit 1; }
"${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=300" start >/dev/null ||
    { cat "$PG_DIR/server.log" >&2; exit 1; }
"${PG_AS[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres tokengate_test

export TOKENGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/tokengate_test"
export TOKENGATE_REQUIRE_POSTGRES=1

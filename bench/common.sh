# Shared by the scripts in bench/ (sourced, not run).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where cargo puts the binaries: CARGO_TARGET_DIR, as cargo reads it.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# require_whole VAR...: exits 2 naming the first variable that is not a whole number.
require_whole() {
    local v
    for v in "$@"; do
        case "${!v}" in
            "" | *[!0-9]*) echo "$v must be a whole number (got '${!v}')" >&2; exit 2 ;;
        esac
    done
}

# require_seconds VAR: exits 2 unless the variable is a number of seconds such as 10s.
require_seconds() {
    case "${!1}" in
        *[0-9]s) ;;
        *) echo "$1 must be a number of seconds such as 10s (got '${!1}')" >&2; exit 2 ;;
    esac
}

# build_examples NAME...: builds the examples in release mode; they are then in
# $TARGET_DIR/release/examples/.
build_examples() {
    local args=() name
    for name in "$@"; do args+=(--example "$name"); done
    echo "building ${*} (release)..." >&2
    (cd "$ROOT" && cargo build --release "${args[@]}" --quiet)
}

# ensure_installed COMMAND [PACKAGE]: installs Debian's PACKAGE (default: COMMAND) with
# apt-get when COMMAND is missing.
ensure_installed() {
    local command="$1" package="${2:-$1}" sudo=""
    command -v "$command" >/dev/null 2>&1 && return 0
    echo "$command is missing: installing $package with apt-get" >&2
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "$package" >/dev/null
}

# stop_process PID: stops a server this shell started in the background (SIGINT, so it shuts
# down gracefully), if it still runs.
stop_process() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -INT "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

# stop_server: stops the server started in the background as $SERVER_PID.
SERVER_PID=""
stop_server() {
    stop_process "$SERVER_PID"
    SERVER_PID=""
}

# Shared by the scripts in bench/ (sourced, not run).

# ensure_installed COMMAND [PACKAGE]: installs Debian's PACKAGE (default: COMMAND) with
# apt-get when COMMAND is missing.
ensure_installed() {
    local command="$1" package="${2:-$1}" sudo=""
    command -v "$command" >/dev/null 2>&1 && return 0
    echo "$command is missing: installing $package with apt-get" >&2
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "$package" >/dev/null
}

#!/usr/bin/env bash
# Clerk's official Node SDK (`@clerk/backend`, networkless `verifyToken` with a PEM `jwtKey`)
# against tokengate's `JwtVerifier::verify_token` (verified-token cache off and on) on the same
# RS256 session token and key, each pinned to one core. Prints verifications/s and the ratios.
#
#   bench/clerk-node/run.sh            # 5 s per measurement
#   SECONDS_EACH=10 bench/clerk-node/run.sh
set -euo pipefail

SECONDS_EACH="${SECONDS_EACH:-5}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/common.sh
source "$HERE/../common.sh"
CORE="${CORE:-0}"

command -v node >/dev/null || { echo "node is required (v18+)" >&2; exit 1; }
echo "node $(node --version), @clerk/backend $(cd "$HERE" && npm view @clerk/backend version 2>/dev/null || echo '?') on npm" >&2
(cd "$HERE" && npm install --no-audit --no-fund --silent)
echo "installed @clerk/backend $(node -p "require('$HERE/node_modules/@clerk/backend/package.json').version")" >&2

build_examples bench_verify

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
node "$HERE/verify.mjs" make "$WORK"

PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "$CORE"); fi

clerk="$("${PIN[@]}" node "$HERE/verify.mjs" verify "$WORK" "$SECONDS_EACH" | awk '/^clerk-node/ {print $2}')"
rust="$("${PIN[@]}" "$TARGET_DIR/release/examples/bench_verify" "$WORK/token.txt" "$WORK/public.pem" "$SECONDS_EACH")"
off="$(awk '/^tokengate-cache-off/ {print $2}' <<<"$rust")"
on="$(awk '/^tokengate-cache-on/ {print $2}' <<<"$rust")"

echo
echo "RS256 session token, one core (${PIN[*]:-not pinned}), $SECONDS_EACH s each; $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
echo
printf '| %-42s | %16s | %14s |\n' verifier "verifications/s" "vs Clerk Node"
printf '|%s|%s|%s|\n' "--------------------------------------------" "------------------" "----------------"
printf '| %-42s | %16s | %14s |\n' "@clerk/backend verifyToken (jwtKey)" "$clerk" "1.0x"
printf '| %-42s | %16s | %14s |\n' "tokengate JwtVerifier, token cache off" "$off" "$(awk -v a="$off" -v b="$clerk" 'BEGIN {printf "%.1fx", a / b}')"
printf '| %-42s | %16s | %14s |\n' "tokengate JwtVerifier, token cache on" "$on" "$(awk -v a="$on" -v b="$clerk" 'BEGIN {printf "%.1fx", a / b}')"

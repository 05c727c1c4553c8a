#!/usr/bin/env bash
# Clean debug build of a minimal axum app that verifies session JWTs from a JWKS URL, on
# tokengate (only the `macros` and `jwks` features) and on jwt-authorizer, side by side: the
# wall time and the number of crates each compiles. Figures: BENCHMARKS.md, section 5 "Build time".
#
#   bash bench/build_time.sh            # both apps, one after the other
#   ROUNDS=2 bash bench/build_time.sh   # each app built ROUNDS times from clean, alternated
#
# Each build gets an empty target directory of its own; the registry's downloads are fetched
# first (`cargo fetch`) so the timed builds only compile. Needs the network to crates.io once.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-1}
case "$rounds" in '' | *[!0-9]* | 0*) echo "ROUNDS must be a whole number >= 1 (got '$rounds')" >&2; exit 2 ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-build-time.XXXXXX")
trap 'rm -rf "$work"' EXIT

make_app() { # name, axum version, dependency lines, main.rs
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<EOF
[package]
name = "$1"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
axum = "$2"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net"] }
serde = { version = "1", features = ["derive"] }
$3

[workspace]
EOF
    printf '%s\n' "$4" >"$work/$1/src/main.rs"
}

make_app with_tokengate 0.8 "tokengate = { path = \"$repo\", default-features = false, features = [\"macros\", \"jwks\"] }" '
use std::sync::Arc;
use axum::{Router, routing::get};
use tokengate::{Auth, TokenGate, TokenType, jwt::JwtVerifier, accepts_token};

#[accepts_token(session_token)]
async fn me(auth: Auth) -> String {
    auth.user_id.clone().unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let sessions = JwtVerifier::session_from_jwks_url("https://example.invalid/.well-known/jwks.json").unwrap();
    let gate = TokenGate::builder().verifier(TokenType::SessionToken, Arc::new(sessions)).build().unwrap();
    let app: Router = Router::new().route("/me", get(me)).with_state(gate);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}'

# jwt-authorizer 0.15 is built on axum 0.7.
make_app with_jwt_authorizer 0.7 'jwt-authorizer = "0.15"' '
use axum::{Router, routing::get};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, JwtClaims};
use serde::Deserialize;

#[derive(Clone, Deserialize)]
struct Claims {
    sub: String,
}

async fn me(JwtClaims(claims): JwtClaims<Claims>) -> String {
    claims.sub
}

#[tokio::main]
async fn main() {
    let auth: Authorizer<Claims> = JwtAuthorizer::from_jwks_url("https://example.invalid/.well-known/jwks.json")
        .build()
        .await
        .unwrap();
    let app = Router::new().route("/me", get(me)).layer(auth.into_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}'

for app in with_tokengate with_jwt_authorizer; do
    (cd "$work/$app" && cargo fetch -q)
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(cargo --version)"
printf '%-22s %-6s %10s %8s  %s\n' app round seconds crates "heavy crates present"
for round in $(seq 1 "$rounds"); do
    for app in with_tokengate with_jwt_authorizer; do
        target="$work/target-$app-$round"
        start=$(date +%s.%N)
        (cd "$work/$app" && CARGO_TARGET_DIR="$target" cargo build -q 2>/dev/null) ||
            (cd "$work/$app" && CARGO_TARGET_DIR="$target" cargo build)
        end=$(date +%s.%N)
        crates=$(cd "$work/$app" && cargo tree -e normal,build --prefix none 2>/dev/null | sed 's/ (\*)$//' | sort -u | wc -l)
        heavy=$(cd "$work/$app" && cargo tree -e normal,build --prefix none 2>/dev/null |
            grep -oE '^(sqlx|libsqlite3-sys|moka|quick_cache|reqwest|aws-lc-sys|ring|openssl-sys) ' | sort -u | tr -d ' ' | paste -sd, -)
        printf '%-22s %-6s %10.1f %8s  %s\n' "$app" "$round" "$(echo "$end - $start" | bc)" "$crates" "${heavy:-none}"
    done
done

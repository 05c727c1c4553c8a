#!/usr/bin/env bash
# The picture of docs/grafana-dashboard.json in the README: the example server under scripted
# traffic for SECONDS (default 60), its /metrics scraped every 2 s, the dashboard's panels drawn
# from the scrapes (bench/dashboard_preview.py), and a screenshot by headless Chromium.
#
#   bench/dashboard_preview.sh            # writes docs/grafana-dashboard-preview.png
#   SECONDS_OF_TRAFFIC=120 bench/dashboard_preview.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${SECONDS_OF_TRAFFIC:-60}"
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }
cargo build --release --example api_server
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/dashboard_preview.py "$target/release/examples/api_server" "$work/preview.html" "$seconds"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1600,1180 --screenshot="$work/preview.png" "file://$work/preview.html" 2>/dev/null
cp "$work/preview.png" docs/grafana-dashboard-preview.png
echo "docs/grafana-dashboard-preview.png"

#!/usr/bin/env python3
"""A picture of docs/grafana-dashboard.json's panels, drawn from real metrics.

Grafana is not installed here, so this draws the dashboard's panels itself: it starts the
example server with --metrics-addr, sends it scripted traffic (allowed requests, refusals of
several kinds, a burst of mistyped API keys in the middle), scrapes /metrics every few seconds,
computes each panel's query from the scrapes (rates between scrapes, hit ratios,
histogram_quantile over the buckets) and writes one HTML page of inline SVG charts. bench/
dashboard_preview.sh screenshots it with headless Chromium.

    python3 bench/dashboard_preview.py EXAMPLE_BINARY OUT.html [SECONDS]
"""
import html
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SERIES = re.compile(r'^([a-z_]+)(?:\{(.*)\})? ([-+0-9.eEinfNa]+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """Prometheus text → {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m and m.group(1).startswith("tokengate_"):
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


CREDENTIALS = (
    "demo API key (write:users)", "demo API key (no scopes)", "demo M2M token (write:users)",
    "dev session token (1 hour)", "dev OAuth token (write:users)",
)


def start(binary, workdir):
    proc = subprocess.Popen(
        [binary, "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )
    info = {}
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("tokengate example server listening on "):
            info["base"] = line.rsplit(" ", 1)[1]
        elif line.startswith("metrics: "):
            info["metrics"] = line.split(" ", 1)[1]
        elif line == "ready":
            missing = [label for label in CREDENTIALS if label not in info]
            if missing:
                raise SystemExit(f"the example server printed no {missing}")
            return proc, info
        else:
            for label in CREDENTIALS:
                if line.startswith(label + ":"):
                    info[label] = line[len(label) + 1:].strip()
    raise SystemExit("the example server stopped before it was ready")


def request(base, method, path, token):
    req = urllib.request.Request(base + path, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def mistyped(key):
    i = len(key) // 2
    return key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1:]


def traffic(info, stop, started, seconds):
    base = info["base"]
    writer, reader = info["demo API key (write:users)"], info["demo API key (no scopes)"]
    machine, session = info["demo M2M token (write:users)"], info["dev session token (1 hour)"]
    oauth = info["dev OAuth token (write:users)"]
    rng = random.Random(30)
    mix = [
        (30, "GET", "/api/example", lambda: writer),
        (10, "GET", "/api/example", lambda: reader),
        (14, "POST", "/api/example", lambda: session),
        (8, "POST", "/api/example", lambda: oauth),
        (6, "POST", "/api/example", lambda: reader),             # insufficient-scope
        (5, "DELETE", "/api/users/user_nobody", lambda: machine),  # allowed, 404
        (3, "GET", "/api/example", lambda: session),             # token-type-mismatch
        (3, "GET", "/api/example", lambda: None),                # missing-credentials
        (2, "GET", "/api/example", lambda: "not-a-token"),       # malformed-token
        (2, "GET", "/health", lambda: None),                     # public: no decision
    ]
    weights = [m[0] for m in mix]
    while not stop.is_set():
        phase = (time.time() - started) / seconds
        _, method, path, token = rng.choices(mix, weights)[0]
        request(base, method, path, token())
        if 0.45 < phase < 0.6:  # a burst of mistyped keys: refused on their checksum
            for _ in range(3):
                request(base, "GET", "/api/example", mistyped(writer))
        time.sleep(0.004)


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return parse(r.read().decode())


# ---------------------------------------------------------------------------------------
# The panels' queries over the scrapes.

def summed(sample, name, by, where=lambda labels: True):
    out = {}
    for (n, labels), v in sample.items():
        d = dict(labels)
        if n == name and where(d):
            key = tuple(d.get(b, "") for b in by)
            out[key] = out.get(key, 0.0) + v
    return out


def rates(samples, times, name, by, where=lambda labels: True):
    """{group: [rate per interval]} like sum by (...) (rate(name[interval]))."""
    groups = {}
    sums = [summed(s, name, by, where) for s in samples]
    keys = sorted({k for s in sums for k in s})
    for k in keys:
        groups[k] = [
            max(0.0, sums[i].get(k, 0.0) - sums[i - 1].get(k, 0.0)) / (times[i] - times[i - 1])
            for i in range(1, len(samples))
        ]
    return groups


def quantile(q, buckets):
    """Prometheus's histogram_quantile over [(le, cumulative count)]."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_count) / max(count - prev_count, 1e-12))
        prev_le, prev_count = le, count
    return prev_le


def quantiles(samples, name, by, q, window=3):
    """{group: [quantile per interval]} over the bucket increases of a sliding window."""
    out = {}
    cumulative = [summed(s, name + "_bucket", by + ("le",)) for s in samples]
    groups = sorted({k[:-1] for c in cumulative for k in c})
    for g in groups:
        series = []
        for i in range(1, len(samples)):
            j = max(0, i - window)
            inc = [(float(k[-1]), cumulative[i].get(k, 0) - cumulative[j].get(k, 0)) for k in cumulative[i] if k[:-1] == g]
            series.append(quantile(q, inc))
        out[g] = series
    return out


# ---------------------------------------------------------------------------------------
# Drawing.

COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#37872d", "#c4162a"]


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "s":
        return f"{v * 1000:.2f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "%":
        return f"{v * 100:.1f}%"
    if unit == "/s":
        return f"{v:.1f}/s"
    return f"{v:g}"


def line_chart(groups, unit, w=560, h=220, stacked=False):
    names = list(groups)
    n = max((len(v) for v in groups.values()), default=0)
    if n == 0:
        return "<p class=empty>no data</p>"
    values = [v for vs in groups.values() for v in vs if v is not None]
    if stacked:
        values = [sum((groups[k][i] or 0) for k in names) for i in range(n)]
    top = max(values + [1e-9]) * 1.1
    if unit == "%":
        top = 1.0
    x = lambda i: 48 + (w - 60) * i / max(n - 1, 1)
    y = lambda v: 10 + (h - 40) * (1 - v / top)
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    for t in range(5):
        v = top * t / 4
        parts.append(f'<line x1="48" x2="{w - 12}" y1="{y(v):.1f}" y2="{y(v):.1f}" class=grid />'
                     f'<text x="44" y="{y(v) + 4:.1f}" class=axis text-anchor=end>{html.escape(fmt(v, unit))}</text>')
    base = [0.0] * n
    for ci, k in enumerate(names):
        color = COLORS[ci % len(COLORS)]
        pts = []
        for i, v in enumerate(groups[k]):
            if v is None:
                continue
            v = v + base[i] if stacked else v
            pts.append(f"{x(i):.1f},{y(v):.1f}")
        if stacked:
            lower = [f"{x(i):.1f},{y(base[i]):.1f}" for i in range(n - 1, -1, -1)]
            parts.append(f'<polygon points="{" ".join(pts + lower)}" fill="{color}" fill-opacity="0.35" />')
            base = [base[i] + (groups[k][i] or 0) for i in range(n)]
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="1.6" />')
    parts.append("</svg>")
    legend = "".join(
        f'<span class=key><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(" ".join(k) if isinstance(k, tuple) else k)}</span>'
        for i, k in enumerate(names)
    )
    return "".join(parts) + f"<div class=legend>{legend}</div>"


def donut(shares):
    total = sum(shares.values()) or 1
    parts, angle = ['<svg width="220" height="220" viewBox="-110 -110 220 220">'], -math.pi / 2
    for i, (k, v) in enumerate(sorted(shares.items(), key=lambda kv: -kv[1])):
        a2 = angle + 2 * math.pi * v / total
        large = 1 if a2 - angle > math.pi else 0
        p = lambda a, r: f"{r * math.cos(a):.2f} {r * math.sin(a):.2f}"
        parts.append(f'<path d="M {p(angle, 100)} A 100 100 0 {large} 1 {p(a2, 100)} L {p(a2, 60)} A 60 60 0 {large} 0 {p(angle, 60)} Z" fill="{COLORS[i % len(COLORS)]}" />')
        angle = a2
    parts.append("</svg>")
    rows = "".join(
        f'<tr><td><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(k[0])}</td><td>{v:.1f}/s</td><td>{100 * v / total:.1f}%</td></tr>'
        for i, (k, v) in enumerate(sorted(shares.items(), key=lambda kv: -kv[1]))
    )
    return f'<div class=pie>{"".join(parts)}<table>{rows}</table></div>'


def render(samples, times, out, seconds):
    last = lambda groups: {k: v[-1] for k, v in groups.items()}
    dec = rates(samples, times, "tokengate_decisions_total", ("outcome",))
    total = [sum(v[i] for v in dec.values()) for i in range(len(times) - 1)]
    refused = [sum(v[i] for k, v in dec.items() if k[0] != "allowed") for i in range(len(times) - 1)]
    share = [r / t if t else 0.0 for r, t in zip(refused, total)]
    reasons = rates(samples, times, "tokengate_decisions_total", ("reason",), lambda d: d["outcome"] != "allowed")
    types_ = rates(samples, times, "tokengate_decisions_total", ("token_type",), lambda d: d["token_type"] != "none")
    mix = {k: sum(v) / len(v) for k, v in types_.items()}
    hits = rates(samples, times, "tokengate_cache_lookups_total", ("cache",), lambda d: d["result"] == "hit")
    looks = rates(samples, times, "tokengate_cache_lookups_total", ("cache",))
    ratio = {k: [h / l if l else None for h, l in zip(hits.get(k, [0] * len(v)), v)] for k, v in looks.items()}
    latency = {}
    for q in (0.5, 0.99):
        for k, v in quantiles(samples, "tokengate_verification_duration_seconds", ("verifier",), q).items():
            latency[(f"p{int(q * 100)}",) + k] = v
    calls = rates(samples, times, "tokengate_backend_calls_total", ("backend", "outcome"))
    backend_p99 = quantiles(samples, "tokengate_backend_call_duration_seconds", ("backend",), 0.99)
    routes = summed(samples[-1], "tokengate_decisions_total", ("route", "outcome"))
    table = "".join(
        f"<tr><td><code>{html.escape(r)}</code></td><td>{html.escape(o)}</td><td>{v:.0f}</td></tr>"
        for (r, o), v in sorted(routes.items())
    )
    stat = lambda title, value, cls="": f'<div class="panel stat {cls}"><h3>{title}</h3><div class=big>{value}</div></div>'
    panel = lambda title, body, cls="": f'<div class="panel {cls}"><h3>{title}</h3>{body}</div>'
    page = f"""<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>tokengate dashboard preview</title><style>
body {{ background:#111217; color:#ccccdc; font:13px/1.4 system-ui,sans-serif; margin:0; padding:14px 16px; width:1560px; }}
.note {{ background:#22252b; border-left:3px solid #f2cc0c; padding:6px 10px; margin:0 0 12px; color:#e0e0ea; }}
h1 {{ font-size:18px; margin:0 0 8px; color:#fff; }} h2 {{ font-size:14px; margin:14px 0 6px; color:#fff; }}
.grid {{ display:flex; flex-wrap:wrap; gap:10px; }}
.panel {{ background:#181b1f; border:1px solid #2c3235; border-radius:3px; padding:8px 10px; }}
.panel h3 {{ margin:0 0 6px; font-size:13px; color:#d8d9da; font-weight:500; }}
.stat {{ width:190px; }} .big {{ font-size:34px; color:#73bf69; margin-top:18px; }} .warn .big {{ color:#ff780a; }}
svg text.axis {{ fill:#8e8e9a; font-size:10px; }} svg line.grid {{ stroke:#2c3235; }}
.legend {{ font-size:11px; }} .key {{ margin-right:10px; white-space:nowrap; }}
i {{ display:inline-block; width:10px; height:4px; margin:0 4px 2px 0; }}
.pie {{ display:flex; gap:14px; align-items:center; }} table {{ border-collapse:collapse; font-size:12px; }}
td, th {{ padding:2px 10px 2px 0; text-align:left; }} .empty {{ color:#8e8e9a; }}
</style></head><body>
<h1>tokengate — dashboard preview</h1>
<p class=note>Not a Grafana screenshot: this page draws the panels of <code>docs/grafana-dashboard.json</code> with the same queries,
computed by <code>bench/dashboard_preview.py</code> from {len(samples)} real scrapes of the example server's <code>/metrics</code>
(<code>--metrics-addr</code>) over {seconds:.0f} s of scripted traffic on loopback (a burst of mistyped API keys in the middle).</p>
<h2>Decisions</h2><div class=grid>
<div>{stat("Requests decided", f"{total[-1]:.0f}/s")}<div style="height:10px"></div>{stat("Refused share", f"{share[-1] * 100:.1f}%", "warn")}</div>
{panel("Refusals by reason", line_chart(reasons, "/s", 620, 250, stacked=True))}
{panel("Token-type mix", donut(mix))}
</div>
<h2>Caches and verification</h2><div class=grid>
{panel("Cache hit ratio", line_chart(ratio, "%", 740))}
{panel("Verification latency (p50, p99)", line_chart(latency, "s", 740))}
</div>
<h2>Backends</h2><div class=grid>
{panel("Backend calls by outcome", line_chart(calls, "/s", 480))}
{panel("Backend call latency (p99)", line_chart(backend_p99, "s", 480))}
{panel("Decisions by route", f"<table><tr><th>route</th><th>outcome</th><th>requests</th></tr>{table}</table>")}
</div></body></html>"""
    with open(out, "w") as f:
        f.write(page)


def main():
    binary, out = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    with tempfile.TemporaryDirectory() as workdir:
        proc, info = start(binary, workdir)
        try:
            stop, started = threading.Event(), time.time()
            failures = []

            def run():
                try:
                    traffic(info, stop, started, seconds)
                except Exception as e:  # reported after the run: the picture would be empty
                    failures.append(e)
                    stop.set()

            workers = [threading.Thread(target=run) for _ in range(2)]
            for w in workers:
                w.start()
            samples, times = [], []
            while time.time() - started < seconds and not stop.is_set():
                samples.append(scrape(info["metrics"]))
                times.append(time.time())
                time.sleep(2.0)
            stop.set()
            for w in workers:
                w.join()
            if failures:
                raise SystemExit(f"the traffic stopped: {failures[0]!r}")
        finally:
            proc.terminate()
            proc.wait()
    render(samples, times, out, seconds)
    print(f"{out}: {len(samples)} scrapes")


if __name__ == "__main__":
    main()

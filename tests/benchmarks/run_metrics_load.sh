#!/usr/bin/env bash
# The network load benchmark with krmx::net::Metrics off and on (the bench server's --metrics), in turns
# (off on off on ...) so that a drift of the machine's speed hits both alike; with metrics on, /metrics is
# also scraped every SCRAPE seconds during the load. One fresh server per run. Prints one JSON line per run
# and a markdown table of the medians, and the on/off throughput ratio of each pair (run one after the other).
#   run_metrics_load.sh [--rounds 3] [--clients 100] [--seconds 3] [--scrape 1] BENCH_SERVER LOAD_GENERATOR
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rounds=3 clients=100 seconds=3 scrape=1
while [[ $# -gt 2 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --scrape) scrape="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
server_bin="${1:?BENCH_SERVER}" load_bin="${2:?LOAD_GENERATOR}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d "${TMPDIR:-/tmp}/krmx-metrics-load.XXXXXX")
pid="" scraper=""
cleanup() {
  if [[ -n "$scraper" ]]; then kill "$scraper" 2>/dev/null || true; fi
  if [[ -n "$pid" ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

source "$script_dir/server_process.sh"
start() { local label="$1"; shift; start_server "$label" "$server_bin" "$@"; }  # start LABEL ARGS...
stop() { stop_server; }
# A scrape without curl: bash's /dev/tcp. Writes the body's size into the scrape log.
scrape_loop() {
  while sleep "$scrape"; do
    if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
      printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
      wc -c <&3 >>"$work/scrapes.log"
      exec 3<&-
    fi
  done
}

results=()
for round in $(seq 1 "$rounds"); do
  for mode in off on; do
    if [[ $mode == on ]]; then start "$mode" --metrics; else start "$mode"; fi
    if [[ $mode == on ]]; then scrape_loop & scraper=$!; fi
    line=$("$load_bin" --port "$port" --pid "$pid" --clients "$clients" --seconds "$seconds" --label "metrics-$mode")
    if [[ -n "$scraper" ]]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; scraper=""; fi
    stop
    echo "$line"
    results+=("$line")
  done
done
scrapes=$(wc -l <"$work/scrapes.log" 2>/dev/null || echo 0)
printf '%s\n' "${results[@]}" | /usr/bin/python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("| metrics | clients | runs | confirmed events/s (median) | p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for mode in ("off", "on"):
    rs = [r for r in rows if r["label"] == "metrics-" + mode]
    med = lambda k: statistics.median(r[k] for r in rs)
    print("| %s | %d | %d | %.0f | %.2f | %.2f |" % (mode, rs[0]["clients"], len(rs), med("events_per_s"), med("p50_ms"), med("p99_ms")))
offs = [r for r in rows if r["label"] == "metrics-off"]
ons = [r for r in rows if r["label"] == "metrics-on"]
pairs = [on["events_per_s"] / off["events_per_s"] for off, on in zip(offs, ons)]
print("\nthroughput on/off, pair by pair: %s; median %.3f" % (" ".join("%.2f" % p for p in pairs), statistics.median(pairs)))
'
echo "(metrics on: $scrapes scrapes of /metrics during the load)"

#!/usr/bin/env bash
# The network load benchmark, side by side: our WebSocketServer + StreamDomain (net_load/bench_server.cpp)
# and the Node stack (@krmx/server@0.5.5 + @krmx/state@0.0.1 with the few lines of Krmx State's registerStream,
# reference/net_server.mjs), each in its own process, loaded by the same generator (net_load/net_load.cpp):
# N clients on loopback appending to one domain. Prints a markdown table (also saved with --out).
#   run_net_load.sh [--quick] [--out FILE] BENCH_SERVER LOAD_GENERATOR
# --quick: 20 and 100 clients for 0.3 s each (smoke test); default: 100 and 1000 clients for 3 s each.
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
reference_dir="${script_dir}/reference"
source "$script_dir/server_process.sh"
parse_bench_options "$@"
set -- "${positional[@]}"
server_bin="${1:?BENCH_SERVER}" load_bin="${2:?LOAD_GENERATOR}"
clients=(100 1000) seconds=3
if [[ $quick -eq 1 ]]; then clients=(20 100) seconds=0.3; fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 1000 clients need more than 1024 descriptors per process

work=$(mktemp -d "${TMPDIR:-/tmp}/krmx-net-load.XXXXXX")
pid=""
cleanup() { if [[ -n "$pid" ]]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

start() { start_server "$@"; }
stop() { stop_server; }

results=()
measure() {  # measure LABEL: one fresh server per client count
  local label="$1"; shift
  for n in "${clients[@]}"; do
    start "$label" "$@"
    if line=$("$load_bin" --port "$port" --pid "$pid" --clients "$n" --seconds "$seconds" --label "$label"); then
      results+=("$line")
      echo "$line" >&2
    else
      echo "warning: $label with $n clients failed: $line" >&2
    fi
    stop
  done
}

measure krmx-cpp "$server_bin"
if command -v node >/dev/null; then
  if [[ ! -d "$reference_dir/node_modules/@krmx/server" ]]; then
    (cd "$reference_dir" && npm ci --no-audit --no-fund >&2)
  fi
  measure node node "$reference_dir/net_server.mjs"
else
  echo "node not found: the Node column is left out" >&2
fi

table=$(printf '%s\n' "${results[@]}" | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const f = (x, d = 1) => (x === undefined ? "?" : Number(x).toFixed(d));
  const out = ["| server | clients | confirmed events/s | p50 ms | p99 ms | RSS per idle connection KiB |",
               "|---|---:|---:|---:|---:|---:|"];
  for (const r of rows) out.push(`| ${r.label} | ${r.clients} | ${f(r.events_per_s, 0)} | ${f(r.p50_ms, 2)} | ${f(r.p99_ms, 2)} | ${f(r.rss_per_idle_connection_kib)} |`);
  const by = (l, n) => rows.find((r) => r.label === l && r.clients === n);
  for (const n of new Set(rows.map((r) => r.clients))) {
    const c = by("krmx-cpp", n), j = by("node", n);
    if (c && j) out.push(`| ratio | ${n} | ${f(c.events_per_s / j.events_per_s, 1)}x | | ${f(j.p99_ms / c.p99_ms, 1)}x lower | |`);
  }
  console.log(out.join("\n"));' 2>/dev/null || printf '%s\n' "${results[@]}")
echo "$table"
if [[ -n "$out" ]]; then echo "$table" >"$out"; fi

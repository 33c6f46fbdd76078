#!/usr/bin/env bash
# The open-loop load benchmark, side by side: our WebSocketServer (net_load/bench_server.cpp) and the Node
# stack (@krmx/server@0.5.5 + @krmx/state@0.0.1, reference/net_server.mjs), each in its own process, loaded
# by the same generator (net_load/net_load.cpp) in open loop: every client sends `rate` events per second on
# a fixed schedule, whatever the server answers, and latency runs from the scheduled send.
#   run_open_load.sh [--quick] [--out FILE] BENCH_SERVER LOAD_GENERATOR
# Workloads (default; --quick: 100 clients, 0.5 s each, and two sweep steps, a smoke test):
#   rooms     1000 clients in 100 rooms of 10, 2 events/s each. Our server: one domain per room with an
#             audience (only the room hears it). Node has no audiences: one domain per room, every event
#             broadcast to everyone, as a user of it would have to.
#   one room  1000 clients in one domain, 2 events/s each (2 000 events/s, 2 M frames/s out).
#   sweep     rooms again at rising rates: the highest offered rate whose p99 stays under 50 ms (every
#             event confirmed, nobody unlinked).
# Each run reports bytes received per client and how that compares with the client's own room's traffic.
# Prints markdown tables (also saved with --out). Exits 1 when our server sends a client of a room more than
# 1.1x its room's traffic (audiences leak), or when one of its runs fails.
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
reference_dir="${script_dir}/reference"
source "$script_dir/server_process.sh"
parse_bench_options "$@"
set -- "${positional[@]}"
server_bin="${1:?BENCH_SERVER}" load_bin="${2:?LOAD_GENERATOR}"
clients=1000 room_size=10 seconds=3 rate=2
sweep_cpp=(10 20 30 40 50 60 70 80 90 100 120)
sweep_node=(0.05 0.1 0.2 0.5 1 2)
if [[ $quick -eq 1 ]]; then
  clients=100 seconds=0.5 sweep_cpp=(2 5) sweep_node=(0.5 1)
fi
rooms=$((clients / room_size))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # 1000 clients need more than 1024 descriptors per process

work=$(mktemp -d "${TMPDIR:-/tmp}/krmx-open-load.XXXXXX")
pid=""
cleanup() { if [[ -n "$pid" ]]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

have_node=0
if command -v node >/dev/null; then
  have_node=1
  if [[ ! -d "$reference_dir/node_modules/@krmx/server" ]]; then
    (cd "$reference_dir" && npm ci --no-audit --no-fund >&2)
  fi
else
  echo "node not found: the Node column is left out" >&2
fi

failed=0
# run LABEL WORKLOAD RATE ROOM_SIZE: one fresh server, one load; the JSON line (with the workload) on stdout.
run() {
  local label="$1" workload="$2" r="$3" size="$4"
  local room_args=() server_args=()
  if [[ "$size" -lt "$clients" ]]; then
    room_args=(--room-size "$size")
    server_args=(--rooms "$rooms" --room-size "$size")
  fi
  if [[ "$label" == krmx-cpp ]]; then
    start_server "$label" "$server_bin" "${server_args[@]}"
  else
    start_server "$label" node "$reference_dir/net_server.mjs" --rooms
  fi
  local line status=0
  line=$("$load_bin" --port "$port" --pid "$pid" --clients "$clients" --rate "$r" --seconds "$seconds" \
    --no-delay 1 --label "$label" "${room_args[@]}") || status=$?
  stop_server
  if [[ -z "$line" ]]; then
    echo "warning: $label $workload at $r/s: no result" >&2
    return 1
  fi
  line=$(node -e 'const r = JSON.parse(process.argv[1]); r.workload = process.argv[2]; console.log(JSON.stringify(r));' \
    "$line" "$workload")
  echo "$line" >&2
  echo "$line"
  return "$status"
}

results=()
for label in krmx-cpp node; do
  [[ "$label" == node && $have_node -eq 0 ]] && continue
  line=$(run "$label" rooms "$rate" "$room_size") || { [[ "$label" == krmx-cpp ]] && failed=1; }
  [[ -n "${line:-}" ]] && results+=("$line")
  line=$(run "$label" "one room" "$rate" "$clients") || { [[ "$label" == krmx-cpp ]] && failed=1; }
  [[ -n "${line:-}" ]] && results+=("$line")
done

# The sweep: rising rates until p99 passes 50 ms (or events go unconfirmed, or a client is unlinked).
sweep() {
  local label="$1"; shift
  local line
  for r in "$@"; do
    line=$(run "$label" sweep "$r" "$room_size") || true
    [[ -z "$line" ]] && break
    results+=("$line")
    if ! node -e 'const r = JSON.parse(process.argv[1]); process.exit(r.p99_ms < 50 && r.unconfirmed === 0 && r.unlinked === 0 ? 0 : 1);' "$line"; then
      break
    fi
  done
}
sweep krmx-cpp "${sweep_cpp[@]}"
[[ $have_node -eq 1 ]] && sweep node "${sweep_node[@]}"

table=$(printf '%s\n' "${results[@]}" | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  const f = (x, d = 1) => (x === undefined ? "?" : Number(x).toFixed(d));
  const out = ["| workload | server | clients | room of | offered events/s | confirmed events/s | p50 ms | p99 ms | unconfirmed | KiB/s per client | x own room traffic |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"];
  for (const r of rows.filter((r) => r.workload !== "sweep")) {
    out.push(`| ${r.workload} | ${r.label} | ${r.clients} | ${r.room_size} | ${f(r.offered_per_s, 0)} | ${f(r.events_per_s, 0)} | ${f(r.p50_ms, 2)} | ${f(r.p99_ms, 2)} | ${r.unconfirmed} | ${f(r.bytes_per_client_per_s / 1024)} | ${f(r.traffic_ratio, 2)} |`);
  }
  out.push("", "| rooms sweep | offered events/s | confirmed events/s | p50 ms | p99 ms | unconfirmed |", "|---|---:|---:|---:|---:|---:|");
  const best = {}, over = {};
  for (const r of rows.filter((r) => r.workload === "sweep")) {
    const ok = r.p99_ms < 50 && r.unconfirmed === 0 && r.unlinked === 0;
    if (ok && (!best[r.label] || r.offered_per_s > best[r.label].offered_per_s)) best[r.label] = r;
    if (!ok) over[r.label] = true;
    out.push(`| ${r.label} | ${f(r.offered_per_s, 0)} | ${f(r.events_per_s, 0)} | ${f(r.p50_ms, 2)} | ${f(r.p99_ms, 2)}${ok ? "" : " (over)"} | ${r.unconfirmed} |`);
  }
  out.push("");
  for (const [label, r] of Object.entries(best)) {
    const bound = over[label] ? "" : "at least ";  // the sweep ended before p99 passed 50 ms
    out.push(`highest offered rate with p99 under 50 ms, ${label}: ${bound}${f(r.offered_per_s, 0)} events/s (${f(r.events_per_s, 0)} confirmed/s, p99 ${f(r.p99_ms, 2)} ms)`);
  }
  const c = best["krmx-cpp"], j = best["node"];
  if (c && j && over["krmx-cpp"] && over["node"]) out.push(`ratio: ${f(c.offered_per_s / j.offered_per_s, 0)}x`);
  console.log(out.join("\n"));')
echo "$table"
if [[ -n "$out" ]]; then echo "$table" >"$out"; fi

# Audiences: a client of a room hears its room, not the others (the session's own frames, pings: the 10%).
leak=$(printf '%s\n' "${results[@]}" | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).map(JSON.parse);
  console.log(rows.filter((r) => r.label === "krmx-cpp" && r.room_size < r.clients && !(r.max_traffic_ratio <= 1.1)).length);')
if [[ "$leak" != 0 ]]; then
  echo "error: a krmx-cpp client received more than 1.1x its own room's traffic" >&2
  failed=1
fi
exit "$failed"

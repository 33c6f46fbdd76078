#!/usr/bin/env bash
# The memory benchmark: a durable SQLite domain at 1 k to 10 M events, with its whole stream in memory (what
# it did before it kept a tail) and with the default tail and snapshots; each run a process of its own
# (memory/memory_bench.cpp). The largest "tail" run also times a restart from its snapshot against a full
# replay, and a C++ late joiner that reads the snapshot against one that reads every event.
#   run_memory.sh [--quick] [--out FILE] MEMORY_BENCH
# Writes the runs as JSON lines to FILE.jsonl, a markdown table to FILE (both with --out), and the plot
# (scripts/plot_memory.py) to FILE.svg. --quick: 1 k and 20 k events, a smoke test. Exits 1 when a run fails,
# or (not --quick) when the targets are missed: the 10 M tail run over 64 MiB of RSS, a restart less than
# 100x faster, a joiner that receives less than 100x fewer bytes or syncs less than 100x sooner.
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$script_dir/../.." && pwd)
source "$script_dir/server_process.sh"
parse_bench_options "$@"
set -- "${positional[@]}"
bench="${1:?MEMORY_BENCH}"
sizes=(1000 10000 100000 1000000 10000000)
largest=10000000 joiner_size=1000000
if [[ $quick -eq 1 ]]; then
  sizes=(1000 20000) largest=20000 joiner_size=20000
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/krmx-memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
lines="$work/memory.jsonl"
for mode in whole tail; do
  for n in "${sizes[@]}"; do
    extra=()
    [[ "$mode" == tail && "$n" -eq "$largest" ]] && extra+=(--restart)
    [[ "$mode" == tail && "$n" -eq "$joiner_size" ]] && extra+=(--joiner)
    echo "memory benchmark: $mode, $n events" >&2
    "$bench" --events "$n" --mode "$mode" --dir "$work" "${extra[@]}" >>"$lines"
  done
done
status=0
python3 - "$lines" "$quick" >"$work/table.md" <<'PY' || status=$?
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
quick = sys.argv[2] == "1"
print("| events | whole stream in memory: RSS MiB | tail + snapshots: RSS MiB | held events | accept s |")
print("|---:|---:|---:|---:|---:|")
by = {(r["mode"], r["events"]): r for r in runs}
for n in sorted({r["events"] for r in runs}):
    w, t = by.get(("whole", n), {}), by.get(("tail", n), {})
    print(f"| {n:,} | {w.get('rss_mib', 0):.1f} | {t.get('rss_mib', 0):.1f} | {t.get('held_events', 0):,} | {t.get('accept_seconds', 0):.1f} |")
failed = []
for r in runs:
    if "restart_snapshot_seconds" in r:
        ratio = r["restart_full_seconds"] / max(r["restart_snapshot_seconds"], 1e-9)
        print(f"\nRestart of {r['events']:,} events: from the snapshot {r['restart_snapshot_seconds']:.3f} s "
              f"({r['restart_snapshot_replayed']:,} events replayed), full replay {r['restart_full_seconds']:.2f} s: {ratio:.0f}x faster")
        if not quick and ratio < 100: failed.append("restart less than 100x faster")
        if not quick and r["rss_mib"] > 64: failed.append("RSS over 64 MiB")
    if "joiner_snapshot_bytes" in r:
        bytes_ratio = r["joiner_events_bytes"] / max(r["joiner_snapshot_bytes"], 1)
        time_ratio = r["joiner_events_seconds"] / max(r["joiner_snapshot_seconds"], 1e-9)
        print(f"\nLate joiner into {r['events']:,} events: snapshot {r['joiner_snapshot_bytes']:,} bytes in "
              f"{r['joiner_snapshot_seconds']*1000:.1f} ms; every event {r['joiner_events_bytes']:,} bytes in "
              f"{r['joiner_events_seconds']*1000:.0f} ms: {bytes_ratio:.0f}x fewer bytes, {time_ratio:.0f}x sooner")
        if not quick and (bytes_ratio < 100 or time_ratio < 100): failed.append("late joiner under 100x")
if failed:
    print("\nTARGETS MISSED: " + ", ".join(failed))
    sys.exit(1)
PY
cat "$work/table.md"
if [[ -n "$out" ]]; then
  cp "$work/table.md" "$out"
  cp "$lines" "$out.jsonl"
  python3 "$root/scripts/plot_memory.py" "$lines" "$out.svg"
fi
exit $status

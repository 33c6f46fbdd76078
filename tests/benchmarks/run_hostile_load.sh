#!/usr/bin/env bash
# The hostile load test: honest players on a fresh krmx_net_bench_server --internet (krmx_net_load's open
# loop: each player appends on a fixed schedule from its own source address, 127.0.1.x), first alone, then
# on another fresh server beside abusive clients (krmx_net_abuse) from 4 other addresses; then, on a third
# server, a spray of throw-away usernames and what it leaves for a later joiner. Prints a markdown table
# (also saved with --out).
#   run_hostile_load.sh [--quick] [--out FILE] BENCH_SERVER LOAD ABUSE
# Full: 100 players x 5 events/s, 10 s measured; a spray of 100 000 usernames (cut after 60 s).
# --quick: 20 players x 5 events/s, 3 s measured; a spray of 4 000 usernames; under 40 s. Exits non-zero
#   when an honest player was unlinked, a server died, an abuser did not run, or the server still knows
#   sprayed users after its forget window (none of which depends on timing); the timing and memory targets
#   are reported, not asserted.
# Abuse mix, modes by source address: 127.0.0.2 spray + churn, .3 slowloris + nonreader, .4 tiny + oversized,
# .5 storm (all of a storm from one address). The abusers run under `nice`: on one machine they would
# otherwise take the server's CPU, which an attacker elsewhere on the network cannot.
# Targets: with abuse the honest p99 within 2x of the run without, no honest player unlinked, the server's
# peak RSS (VmHWM) under 2x; after the spray (and the server's forget window) a later joiner receives the
# same roster (frames and bytes from krmx/accepted to its own krmx/linked) as before it, the server knows
# no more users than before, and its RSS is at most 1.25x what it was before (room for the allocator's
# fragmentation; the quick spray is too small for its memory to tell much).
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$script_dir/server_process.sh"
parse_bench_options "$@"
set -- "${positional[@]}"
server_bin="${1:?BENCH_SERVER}" load_bin="${2:?LOAD}" abuse_bin="${3:?ABUSE}"
if [[ $quick -eq 1 ]]; then
  players=20 rate=5 seconds=3 warmup=1 link_timeout=15
  spray_total=4000 spray_seconds=8 forget_after=2
  slowloris=50 nonreaders=5 storm_hold=100 storm_inflight=4
else
  players=100 rate=5 seconds=10 warmup=2 link_timeout=30
  spray_total=100000 spray_seconds=60 forget_after=5
  slowloris=200 nonreaders=20 storm_hold=500 storm_inflight=8
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true  # held and slow connections: more than 1024 descriptors

work=$(mktemp -d "${TMPDIR:-/tmp}/krmx-hostile.XXXXXX")
pid=""          # the server
children=()     # load generators and abusers still running
cleanup() {
  for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [[ -n "$pid" ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  sleep 0.2
  for p in "${children[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
started=$SECONDS
failures=()     # what makes --quick fail

# start NAME [SERVER OPTIONS...]: a fresh server; sets pid and port.
start() { local name="$1"; shift; start_server "$name.server" "$server_bin" --internet --stats "$@"; }
# The server is alive when its process exists and is no zombie (a crashed child that bash has not reaped yet).
alive() {
  local state
  state=$(awk '$1 == "State:" { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  [[ -n "$state" && "$state" != Z ]]
}
proc_kib() { if alive; then awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null || true; fi; }
# stats NAME: the server's statistics now (SIGUSR1), one JSON line in $work/NAME.stats.
stats() {
  local name="$1" before
  before=$(grep -c '^{"statistics"' "$work/$name.server.out" || true)
  alive && kill -USR1 "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 60); do
    [[ $(grep -c '^{"statistics"' "$work/$name.server.out" || true) -gt $before ]] && break
    sleep 0.05
  done
  grep '^{"statistics"' "$work/$name.server.out" | tail -n1 >"$work/$name.stats" || true
}
# stop NAME: records in $work/NAME.died whether the server was gone before we stopped it.
stop() {
  local name="$1" status=0
  if alive; then echo 0 >"$work/$name.died"; else echo 1 >"$work/$name.died"; failures+=("the server died ($name)"); fi
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do alive || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || status=$?
  [[ $status -eq 0 ]] || echo "warning: the server ($name) exited with status $status" >&2
  pid=""
}
# json FILE: the file's last JSON line, or null.
json() { local l; l=$(grep '^{' "$1" 2>/dev/null | tail -n1 || true); echo "${l:-null}"; }
# num JSON FIELD: a top-level number of a JSON line (empty when absent).
num() { sed -n "s/.*\"$2\":\\(-\\?[0-9.e+-]*\\).*/\\1/p" <<<"$1" | head -n1; }

# honest NAME ABUSE: honest players on a fresh server, with the abuse mix when ABUSE is 1.
honest() {
  local name="$1" abuse="$2" load_pid status=0
  start "$name"
  local deadline
  deadline=$(awk -v a="$link_timeout" -v s="$seconds" -v w="$warmup" 'BEGIN { print a + 10 + w + s + 5 }')
  timeout -k 2 "$deadline" "$load_bin" --port "$port" --pid "$pid" --clients "$players" --rate "$rate" \
    --seconds "$seconds" --warmup "$warmup" --source-base 127.0.1.1 --no-delay 1 --link-timeout "$link_timeout" \
    --label "$name" --ready-file "$work/$name.ready" >"$work/$name.load" 2>"$work/$name.load.err" &
  load_pid=$!
  children+=("$load_pid")
  local abusers=()
  if [[ $abuse -eq 1 ]]; then
    # The abuse starts once the players play: the warmup lets it build up before the measured window.
    for _ in $(seq 1 $(( (link_timeout + 15) * 20 ))); do
      [[ -e "$work/$name.ready" ]] && break
      kill -0 "$load_pid" 2>/dev/null || break
      sleep 0.05
    done
    local abuse_seconds common
    abuse_seconds=$(awk -v s="$seconds" -v w="$warmup" 'BEGIN { print w + s + 0.5 }')
    common=(--port "$port" --seconds "$abuse_seconds" --tag)
    local i=2
    for modes in "spray churn" "slowloris nonreader" "tiny oversized" "storm"; do
      local args=()
      for m in $modes; do args+=(--mode "$m"); done
      nice -n 10 timeout -k 1 "$(awk -v s="$abuse_seconds" 'BEGIN { print s + 5 }')" "$abuse_bin" \
        "${common[@]}" "a$i" --source "127.0.0.$i" "${args[@]}" --slowloris "$slowloris" \
        --nonreaders "$nonreaders" --storm-hold "$storm_hold" --storm-inflight "$storm_inflight" \
        >"$work/$name.abuse$i" 2>"$work/$name.abuse$i.err" &
      abusers+=($!)
      children+=($!)
      i=$((i + 1))
    done
  fi
  wait "$load_pid" || status=$?
  # An abuser that did not run would make the run with abuse a second run without it: that fails too.
  for a in "${abusers[@]}"; do wait "$a" || failures+=("an abuser exited with status $? ($name)"); done
  children=()
  [[ $status -eq 0 ]] || echo "warning: the load generator ($name) exited with status $status: $(tail -n3 "$work/$name.load.err")" >&2
  proc_kib VmHWM >"$work/$name.hwm"
  stats "$name"
  stop "$name"
  local line unlinked
  line=$(json "$work/$name.load")
  if [[ $line == null ]]; then
    failures+=("no result from the honest players ($name)")
  else
    unlinked=$(num "$line" unlinked)
    [[ "${unlinked:-1}" == 0 ]] || failures+=("${unlinked:-?} honest players unlinked ($name)")
  fi
  echo "$line" >&2
}

# joiner NAME USERNAME: a later joiner's link cost, in $work/NAME.USERNAME.
joiner() {
  timeout -k 1 15 "$abuse_bin" --port "$port" --source 127.0.0.6 --seconds 10 --mode joiner --username "$2" \
    >"$work/$1.$2" 2>/dev/null || true
}

honest base 0
honest abuse 1

# The spray: throw-away usernames from 4 addresses; the server forgets unlinked users after forget_after s
# (once it can), and we wait that long (and 1 s more) before measuring again.
start spray --forget-after "$forget_after"
joiner spray joinerw  # warms the server's paths up; not measured
joiner spray joinerb
rss_before=$(proc_kib VmRSS)
stats spray; cp "$work/spray.stats" "$work/spray.stats.before" 2>/dev/null || true
sprayers=()
per=$((spray_total / 4))
for i in 2 3 4 5; do
  timeout -k 1 $((spray_seconds + 5)) "$abuse_bin" --port "$port" --source "127.0.0.$i" --tag "s$i" \
    --seconds "$spray_seconds" --mode spray --count "$per" >"$work/spray.abuse$i" 2>"$work/spray.abuse$i.err" &
  sprayers+=($!)
  children+=($!)
done
for s in "${sprayers[@]}"; do wait "$s" || failures+=("a sprayer exited with status $?"); done
children=()
spray_elapsed=$(for i in 2 3 4 5; do num "$(json "$work/spray.abuse$i")" seconds; done | sort -g | tail -n1)
sleep $((forget_after + 1))
rss_after=$(proc_kib VmRSS)
stats spray; cp "$work/spray.stats" "$work/spray.stats.after" 2>/dev/null || true
joiner spray joinera
stop spray
# Forgetting is not a matter of timing once the window has passed: the users the server knows are back
# where they were, or the defence failed.
users_before=$(num "$(json "$work/spray.stats.before")" users)
users_after=$(num "$(json "$work/spray.stats.after")" users)
[[ -n "$users_before" && "$users_before" == "$users_after" ]] ||
  failures+=("after the spray the server knows ${users_after:-?} users (before: ${users_before:-?})")

elapsed=$((SECONDS - started))
# Everything for the table, as one JSON document.
{
  echo "{\"quick\":$quick,\"players\":$players,\"rate\":$rate,\"seconds\":$seconds,\"elapsed\":$elapsed,"
  echo "\"base\":$(json "$work/base.load"),\"abuse\":$(json "$work/abuse.load"),"
  echo "\"base_hwm\":$(cat "$work/base.hwm" 2>/dev/null | grep . || echo null),"
  echo "\"abuse_hwm\":$(cat "$work/abuse.hwm" 2>/dev/null | grep . || echo null),"
  echo "\"base_stats\":$(json "$work/base.stats"),\"abuse_stats\":$(json "$work/abuse.stats"),"
  echo "\"abusers\":[$(for i in 2 3 4 5; do json "$work/abuse.abuse$i"; done | paste -sd,)],"
  echo "\"spray_total\":$spray_total,\"spray_seconds\":${spray_elapsed:-null},\"forget_after\":$forget_after,"
  echo "\"sprayers\":[$(for i in 2 3 4 5; do json "$work/spray.abuse$i"; done | paste -sd,)],"
  echo "\"joiner_before\":$(json "$work/spray.joinerb"),\"joiner_after\":$(json "$work/spray.joinera"),"
  echo "\"rss_before\":${rss_before:-null},\"rss_after\":${rss_after:-null},"
  echo "\"spray_stats_before\":$(json "$work/spray.stats.before"),\"spray_stats_after\":$(json "$work/spray.stats.after"),"
  echo "\"failures\":[$(for f in "${failures[@]}"; do printf '"%s"\n' "$f"; done | paste -sd,)]}"
} >"$work/all.json"

table=$(node -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const f = (x, n = 1) => (x === undefined || x === null || Number.isNaN(x) ? "?" : Number(x).toFixed(n));
const mib = (k) => (k === undefined || k === null ? "?" : (k / 1024).toFixed(1));
const ratio = (a, b) => (a == null || b == null || !b ? undefined : a / b);
const met = (ok) => (ok === undefined ? "?" : ok ? "yes" : "**no**");
const b = d.base || {}, a = d.abuse || {};
const o = [];
o.push(`### Hostile load${d.quick ? " (quick)" : ""}: ${d.players} honest players x ${d.rate} events/s, ${d.seconds} s measured, krmx_net_bench_server --internet`);
o.push("");
o.push("| honest players | without abuse | with abuse | ratio | target | met |");
o.push("|---|---:|---:|---:|---|---|");
const r99 = ratio(a.p99_ms, b.p99_ms), rh = ratio(d.abuse_hwm, d.base_hwm), re = ratio(a.rss_kib, b.rss_kib);
o.push(`| p50 ms (from the scheduled send) | ${f(b.p50_ms, 2)} | ${f(a.p50_ms, 2)} | ${f(ratio(a.p50_ms, b.p50_ms), 2)}x | | |`);
o.push(`| p99 ms | ${f(b.p99_ms, 2)} | ${f(a.p99_ms, 2)} | ${f(r99, 2)}x | at most 2x | ${met(r99 === undefined ? undefined : r99 <= 2)} |`);
o.push(`| p99.9 / max ms | ${f(b.p999_ms, 1)} / ${f(b.max_ms, 1)} | ${f(a.p999_ms, 1)} / ${f(a.max_ms, 1)} | | | |`);
o.push(`| confirmed events/s | ${f(b.events_per_s, 0)} | ${f(a.events_per_s, 0)} | | ${d.players * d.rate} | |`);
o.push(`| events unconfirmed 2 s after the window | ${b.unconfirmed ?? "?"} | ${a.unconfirmed ?? "?"} | | | |`);
const reasons = (x) => Object.entries(x.unlinked_reasons || {}).map(([k, v]) => `${v} ${k}`).join(", ");
const ul = (x) => (x.unlinked === undefined ? "?" : x.unlinked + (x.unlinked ? ` (${reasons(x)})` : ""));
o.push(`| unlinked, rejected or closed | ${ul(b)} | ${ul(a)} | | 0 | ${met(b.unlinked === undefined || a.unlinked === undefined ? undefined : b.unlinked === 0 && a.unlinked === 0)} |`);
o.push(`| server RSS MiB at the end of the window | ${mib(b.rss_kib)} | ${mib(a.rss_kib)} | ${f(re, 2)}x | | |`);
o.push(`| server peak RSS MiB (VmHWM) | ${mib(d.base_hwm)} | ${mib(d.abuse_hwm)} | ${f(rh, 2)}x | under 2x | ${met(rh === undefined ? undefined : rh < 2)} |`);
o.push("");
const sb = (d.spray_stats_before || {}).statistics || {}, sa = (d.spray_stats_after || {}).statistics || {};
const sum = (k) => (d.sprayers || []).filter(Boolean).reduce((n, s) => n + (((s.modes || {}).spray || {})[k] || 0), 0);
const forgot = sa.forget_applied ? "" : " (not supported by this server yet: it keeps them)";
o.push(`Spray: ${sum("attempted")} of ${d.spray_total} throw-away usernames attempted from 4 addresses in ${f(d.spray_seconds, 1)} s, ${sum("accepted")} accepted; the server was told to forget unlinked users after ${d.forget_after} s${forgot}, and the later joiner came ${d.forget_after + 1} s after the spray.`);
o.push("");
const jb = d.joiner_before || {}, ja = d.joiner_after || {};
const jm = (j) => (j.modes || {}).joiner || {};
const jbm = jm(jb), jam = jm(ja);
o.push("| later joiner | before the spray | after the spray | ratio | target | met |");
o.push("|---|---:|---:|---:|---|---|");
const sameFrames = jbm.roster_frames === undefined || jam.roster_frames === undefined ? undefined : jam.roster_frames <= jbm.roster_frames;
const sameBytes = jbm.roster_bytes === undefined || jam.roster_bytes === undefined ? undefined : jam.roster_bytes <= jbm.roster_bytes;
o.push(`| roster frames (krmx/accepted to its own krmx/linked) | ${jbm.roster_frames ?? "?"} | ${jam.roster_frames ?? "?"} | ${f(ratio(jam.roster_frames, jbm.roster_frames), 1)}x | as before | ${met(sameFrames)} |`);
o.push(`| roster bytes | ${jbm.roster_bytes ?? "?"} | ${jam.roster_bytes ?? "?"} | ${f(ratio(jam.roster_bytes, jbm.roster_bytes), 1)}x | as before | ${met(sameBytes)} |`);
o.push(`| link ms (link sent to its own krmx/linked) | ${f(jbm.link_ms, 2)} | ${f(jam.link_ms, 2)} | ${f(ratio(jam.link_ms, jbm.link_ms), 1)}x | (reported) | |`);
const rs = ratio(d.rss_after, d.rss_before);
o.push(`| server RSS MiB | ${mib(d.rss_before)} | ${mib(d.rss_after)} | ${f(rs, 2)}x | at most 1.25x | ${met(rs === undefined ? undefined : rs <= 1.25)} |`);
const forgotten = sb.users === undefined || sa.users === undefined ? undefined : sa.users <= sb.users;
o.push(`| users the server knows | ${sb.users ?? "?"} | ${sa.users ?? "?"} | | as before | ${met(forgotten)} |`);
o.push("");
o.push("Abuse in the run with abuse (counts per mode; closed by the server: by close code, eof = FIN without a close frame, reset = TCP reset):");
o.push("");
o.push("| mode | source | attempted | connected | upgraded | accepted | rejected | closed by the server | ended before the upgrade | connect failures | our timeouts | more |");
o.push("|---|---|---:|---:|---:|---:|---|---|---|---:|---:|---|");
const kv = (m) => Object.entries(m || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
const known = new Set(["attempted", "connected", "upgraded", "accepted", "rejected", "closed_by_server", "refused_upgrade", "connect_failures", "timeouts", "frames_sent", "bytes_sent"]);
for (const ab of (d.abusers || []).filter(Boolean)) {
  for (const [mode, c] of Object.entries(ab.modes || {})) {
    const more = Object.entries(c).filter(([k]) => !known.has(k)).map(([k, v]) => `${k} ${typeof v === "number" ? +v.toFixed(2) : v}`);
    more.push(`frames sent ${c.frames_sent}`, `MiB sent ${(c.bytes_sent / 1048576).toFixed(1)}`);
    o.push(`| ${mode} | ${ab.source} | ${c.attempted} | ${c.connected} | ${c.upgraded} | ${c.accepted} | ${kv(c.rejected)} | ${kv(c.closed_by_server)} | ${kv(c.refused_upgrade)} | ${c.connect_failures} | ${c.timeouts} | ${more.join(", ")} |`);
  }
  if (ab.error) o.push(`| ${ab.error} | | | | | | | | | | | |`);
}
const st = (d.abuse_stats || {}).statistics;
if (st) {
  o.push("");
  const keys = ["users", "linked", "open_sockets", "sockets_accepted", "upgrades", "refused_full", "handshake_failures", "oversized_frames", "floods", "slow_readers", "link_deadline_closes", "other_errors", "joins", "links", "unlinks", "rejected"];
  o.push("Server counters after the run with abuse: " + keys.map((k) => `${k} ${st[k]}`).join(", ") + ".");
}
o.push("");
o.push(d.failures.length ? `FAILED: ${d.failures.join("; ")}.` : `No honest player unlinked, no server died (${d.elapsed} s in all).`);
console.log(o.join("\n"));
' "$work/all.json" 2>"$work/table.err") || { cat "$work/table.err" >&2; table=$(cat "$work/all.json"); }
echo "$table"
if [[ -n "$out" ]]; then echo "$table" >"$out"; fi
if [[ ${#failures[@]} -gt 0 ]]; then
  printf 'hostile load: %s\n' "${failures[@]}" >&2
  [[ $quick -eq 1 ]] && exit 1
fi
exit 0

# The benchmark scripts' server process, sourced by run_net_load.sh, run_open_load.sh, run_metrics_load.sh and
# run_hostile_load.sh (they set `work`, a folder, and clean up `pid` on exit), and their options.

# parse_bench_options ARGS...: --quick (sets quick=1) and --out FILE (sets out); the other arguments, in
# order, go to the array `positional`.
parse_bench_options() {
  quick=0 out="" positional=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --quick) quick=1; shift ;;
      --out) out="$2"; shift 2 ;;
      *) positional+=("$1"); shift ;;
    esac
  done
}

# start_server NAME COMMAND...: runs a server that prints {"port":N} first, its output in $work/NAME.out and
# $work/NAME.err; sets pid and port, or exits when it does not start within 20 s.
start_server() {
  local name="$1"; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  port=""
  for _ in $(seq 1 400); do
    port=$(sed -n 's/^{"port":\([0-9]*\)}$/\1/p' "$work/$name.out" | head -n1)
    [[ -n "$port" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "error: $name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

# stop_server: SIGINT (a clean stop), SIGKILL after 10 s; sets server_status to its exit status.
stop_server() {
  server_status=0
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || server_status=$?
  pid=""
}

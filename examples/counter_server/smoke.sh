#!/usr/bin/env bash
# Smoke test of examples/counter_server with examples/counter_bot (run by CTest):
#   smoke.sh SERVER BOT WORKDIR
# Starts the server on a free port with a fresh SQLite store, two bots play 5 moves each, SIGINT stops the
# server; a restart restores the 10 events from the store, and a third bot sees them in the history.
set -euo pipefail
server="$1" bot="$2" work="$3"
rm -rf "$work" && mkdir -p "$work"
pid=""
cleanup() { if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

start() {
  "$server" --port 0 --store "$work/counter.sqlite" --domains counter,room-2 --run-for 60 >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do
    port=$(sed -n 's|.*listening on ws://127.0.0.1:\([0-9]*\).*|\1|p' "$work/server.log")
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "server did not start:"; cat "$work/server.log"; exit 1
}
stop() {
  kill -INT "$pid"
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then echo "server ignored SIGINT"; exit 1; fi
  wait "$pid"; pid=""
  grep -q '^stopped$' "$work/server.log" || { echo "no clean stop:"; cat "$work/server.log"; exit 1; }
}

start
"$bot" --port "$port" --name alice --moves 5
"$bot" --port "$port" --name bob --moves 5 --domain room-2
"$bot" --port "$port" --name carol --moves 5
stop
cat "$work/server.log"
grep -q 'domain counter: 10 events, counter 10' "$work/server.log"
grep -q 'domain room-2: 5 events, counter 5' "$work/server.log"

start
grep -q 'domain counter: 10 events restored, counter 10' "$work/server.log"
"$bot" --port "$port" --name dave --moves 1 | tee "$work/bot.log"
grep -q 'dave done: counter 11, 11 events confirmed' "$work/bot.log"
stop
echo "counter_server smoke test passed"

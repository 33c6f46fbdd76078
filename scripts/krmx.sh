#!/usr/bin/env bash
# The two quick-start commands (and the benchmark runner) in one place:
#   scripts/krmx.sh demo     the claimable counter as a web page (counter_server + examples/web) on 127.0.0.1
#   scripts/krmx.sh demo --timeline   the in-process demo instead (examples/claimable_counter)
#   scripts/krmx.sh test     the whole test suite: g++ with ASan+UBSan, clang++, g++ Release, a benchmark smoke run
#   scripts/krmx.sh bench    the benchmarks side by side with the TypeScript reference, the hostile load test
#                            and the memory benchmark (not part of `test`, which runs their quick versions)
#   scripts/krmx.sh fuzz [--seconds N]   the libFuzzer harnesses for longer than the test suite runs them
#   scripts/krmx.sh install PREFIX [--build DIR] [--web SITE]   counter_server and its web page into PREFIX
#                            (what examples/deploy/Dockerfile runs; the test suite checks it the same way)
# Each installs the Debian packages it needs when they are missing (as root), or says what to install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${KRMX_JOBS:-$(nproc 2>/dev/null || echo 2)}"
build_root="${KRMX_BUILD_DIR:-$root/build}"

# Each step says when it started (seconds since the command began): the suite's time, step by step.
say() { printf '\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs the given Debian packages when any is missing.
need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local cmd="apt-get update && apt-get install -y ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    say "installing ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || die "could not install ${missing[*]}; run: $cmd"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing ${missing[*]} (sudo)"
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || die "could not install ${missing[*]}; run as root: $cmd"
  else
    die "missing Debian packages: ${missing[*]}
  install them as root with:  $cmd
  then run this command again."
  fi
}

# configure_and_build DIR CXX BUILD_TYPE [extra cmake args...]
configure_and_build() {
  local dir="$1" cxx="$2" type="$3"; shift 3
  say "configure $dir ($cxx, $type)"
  cmake -S "$root" -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE="$type" "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; die "configure failed ($dir)"; }
  say "build $dir"
  cmake --build "$dir" --parallel "$jobs"
}

core_packages=(g++ cmake nlohmann-json3-dev)
# libclang-rt-14-dev: libFuzzer for the fuzz harnesses. (Node, for JSON.parse in the agreement test and the
# JavaScript interop tests, is installed by cmd_test when the command is missing.)
test_packages=("${core_packages[@]}" clang libclang-rt-14-dev catch2 libsqlite3-dev libbenchmark-dev
               prometheus-cpp-dev python3-prometheus-client)
# PostgreSQL: libpq for krmx::postgres, and the server, which the PostgreSQL tests and benchmarks start
# themselves (a throw-away one in a temporary folder, see tests/support/postgres_server.hpp).
test_packages+=(postgresql libpq-dev)
# libboost-dev: Boost.Beast and Asio for krmx::websocket.
test_packages+=(libboost-dev)
# libssl-dev: OpenSSL for krmx::tls (https and wss); the openssl command makes the JavaScript TLS tests'
# throw-away certificates.
test_packages+=(libssl-dev openssl)
# chromium: the web page's browser test (examples/web) drives it headless with puppeteer-core.
test_packages+=(chromium)
# lld: links the test programs in a third of the time GNU ld takes (8 s against 2.4 s for a sanitized one).
test_packages+=(lld)
# The deployment check (examples/deploy/check.sh): curl for the probes, systemd-analyze for the unit,
# Debian's python3 with YAML for the compose file.
test_packages+=(curl systemd python3-yaml)
# The demo: the networked counter server (Boost, SQLite, OpenSSL for --tls-cert) serving the web page.
demo_packages=("${core_packages[@]}" libsqlite3-dev libboost-dev libssl-dev)
# A counter_server for production (install): PostgreSQL, TLS and metrics too.
server_packages=("${demo_packages[@]}" make libpq-dev prometheus-cpp-dev)

# build_counter_server DIR: examples/counter_server in Release, in its own build tree (no tests).
build_counter_server() {
  local dir="$1"
  mkdir -p "$build_root"
  say "configure $dir (g++, Release)"
  cmake -S "$root" -B "$dir" -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release -DKRMX_BUILD_TESTS=OFF \
    -DKRMX_BUILD_BENCHMARKS=OFF >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; die "configure failed ($dir)"; }
  say "build counter_server"
  cmake --build "$dir" --parallel "$jobs" --target counter_server
}

# bundle_web_page OUT: examples/web bundled by rollup from its pinned npm packages.
bundle_web_page() {
  # Node and npm (as in cmd_test: install only what is missing as a command).
  command -v node >/dev/null || need_packages nodejs
  command -v npm >/dev/null || need_packages npm
  say "build the web page (npm ci, rollup)"
  (cd "$root/examples/web" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm ci failed in examples/web"
  node "$root/examples/web/build.mjs" "$1" >/dev/null
}

# demo: the claimable counter as a web page, served with its WebSocket by examples/counter_server on
# 127.0.0.1, durable in a SQLite file; Ctrl-C stops it cleanly. demo --timeline: the in-process demo
# (examples/claimable_counter: a server and clients with latency, printed as a timeline).
cmd_demo() {
  local timeline=0 port="${KRMX_DEMO_PORT:-8082}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --timeline) timeline=1 ;;
      --port) port="$2"; shift ;;
      *) die "unknown demo option: $1" ;;
    esac
    shift
  done
  local dir="$build_root/demo"
  if [ "$timeline" -eq 1 ]; then
    need_packages "${core_packages[@]}"
    mkdir -p "$build_root"
    configure_and_build "$dir" g++ Release -DKRMX_BUILD_TESTS=OFF -DKRMX_BUILD_BENCHMARKS=OFF
    "$dir/examples/claimable_counter/claimable_counter"
    return
  fi
  need_packages "${demo_packages[@]}"
  build_counter_server "$dir"
  bundle_web_page "$dir/web"
  say "open http://127.0.0.1:$port/ in two browser tabs, pick two names, and play (Ctrl-C stops the server)"
  exec "$dir/examples/counter_server/counter_server" --address 127.0.0.1 --port "$port" \
    --store "$dir/counter.sqlite" --web "$dir/web"
}

cmd_test() {
  need_packages "${test_packages[@]}"
  # Node and npm for the JavaScript interop tests (tests/net/js). A NodeSource nodejs brings its own npm,
  # and Debian's npm package conflicts with it: install only what is missing as a command.
  command -v node >/dev/null || need_packages nodejs
  command -v npm >/dev/null || need_packages npm
  mkdir -p "$build_root"
  local sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

  # Each build compiles every folder of tests as one translation unit (CMAKE_UNITY_BUILD): the tests share
  # nlohmann/json, Catch2 and krmx instantiations, and this cuts the suite's compile time by about four.
  # Every build links with lld (-fuse-ld=lld): the sanitized programs took 8 s each with GNU ld, 2.4 s with it.
  # g++ gets -pipe (no assembly files on disk) and collects its garbage later (ggc-min-heapsize 1 GiB: the
  # largest compile's peak memory stays 3.5 GB): 12 % less time for the sanitized Beast code (185 s -> 162 s).
  local link="-fuse-ld=lld" gcc_speed="-pipe --param ggc-min-expand=100 --param ggc-min-heapsize=1048576"

  # g++ with AddressSanitizer + UndefinedBehaviorSanitizer: every test. -O0: the sanitizers do not need the
  # optimizer, and g++ spends most of its time in it with them (-O1: 72 s for a test folder, -Og 45 s, -O0
  # 40 s). -g0: line tables of the instrumented code cost a quarter of a test folder's compile (54 s with
  # -g1, 40 s without); UBSan's reports keep their file:line (it records them itself) and ASan's stack traces
  # name the functions: to read lines in a trace, build the failing test with -g1. The examples, the README's
  # programs and the header checks are the clang++ build's below (this build took 17 minutes with them, 10
  # without them and with one translation unit per test folder; the examples' code is the library's, which
  # these tests run), the benchmarks the g++ Release build's.
  configure_and_build "$build_root/gcc-asan" g++ Debug -DCMAKE_UNITY_BUILD=ON \
    -DCMAKE_CXX_FLAGS="$sanitize $gcc_speed" -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g0" -DCMAKE_EXE_LINKER_FLAGS="$link" \
    -DKRMX_HEADER_CHECKS=OFF -DKRMX_BUILD_BENCHMARKS=OFF -DKRMX_BUILD_EXAMPLES=OFF
  say "ctest (g++, ASan+UBSan)"
  ctest --test-dir "$build_root/gcc-asan" --output-on-failure --parallel "$jobs"

  # clang++ keeps the library, its tests and the examples portable and warning-free on a second compiler,
  # checks that every public header compiles on its own (clang parses them in three quarters of g++'s time),
  # runs the examples (the web page in headless Chromium, the deployment check) and the README's programs,
  # and runs the libFuzzer harnesses. Unoptimized (-O0 halves clang's compile time; clang's warnings come
  # from its front end, not its optimizer), except the fuzzers, which tests/fuzz builds with -O2. The
  # packaging test is the sanitized build's (it builds consumers from scratch: a minute). Each fuzz harness
  # runs 12 s here (`fuzz` runs them longer).
  configure_and_build "$build_root/clang" clang++ Debug -DCMAKE_UNITY_BUILD=ON \
    -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g0" -DCMAKE_EXE_LINKER_FLAGS="$link" -DKRMX_HEADER_CHECKS=ON \
    -DKRMX_BUILD_BENCHMARKS=OFF -DKRMX_FUZZ_SECONDS=12
  say "ctest (clang++)"
  ctest --test-dir "$build_root/clang" --output-on-failure --parallel "$jobs" -LE packaging

  # g++ Release (-O3, no sanitizers): what a user's first `cmake -DCMAKE_BUILD_TYPE=Release` builds, where
  # g++'s optimizer-driven warnings appear: the benchmarks, built with the flags they are measured with, which
  # instantiate the core, the streams, the domains (durable and pipelined), the three stores, the read models,
  # and the WebSocket server and clients at -O3 and run them; and the core's tests (the JSON scanner and
  # writer, where the optimizer matters most). The other layers' tests, the examples and the README's programs
  # are run by the sanitized and the clang++ builds: compiling them again at -O3 took six minutes, and the
  # suite must stay under 25. (`scripts/krmx.sh demo` builds the server in Release on its own.)
  configure_and_build "$build_root/gcc-release" g++ Release -DCMAKE_UNITY_BUILD=ON -DKRMX_HEADER_CHECKS=OFF \
    -DCMAKE_CXX_FLAGS="$gcc_speed" -DCMAKE_EXE_LINKER_FLAGS="$link" -DKRMX_BUILD_EXAMPLES=OFF -DKRMX_TEST_LAYERS="core"
  say "ctest (g++ Release)"
  # (The packaging test builds consumers with g++ the same way the sanitized build's run did.)
  ctest --test-dir "$build_root/gcc-release" --output-on-failure --parallel "$jobs" -LE "fuzz|packaging"

  # Benchmarks are too noisy to be tests, but each workload runs once so that none can rot.
  say "benchmark smoke run (g++ Release build, each workload once)"
  "$root/scripts/krmx.sh" bench --quick --build "$build_root/gcc-release"
}

cmd_bench() {
  local quick=0 build=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick=1 ;;
      --build) build="$2"; shift ;;
      *) die "unknown bench option: $1" ;;
    esac
    shift
  done
  need_packages "${test_packages[@]}"
  if [ -z "$build" ]; then
    build="$build_root/release"
    mkdir -p "$build_root"
    configure_and_build "$build" g++ Release -DKRMX_BUILD_TESTS=OFF -DKRMX_BUILD_EXAMPLES=OFF
  fi
  local bench="$build/tests/benchmarks/krmx_benchmarks"
  [ -x "$bench" ] || die "no benchmark binary at $bench"
  if [ "$quick" -eq 1 ]; then
    # One short pass over every workload on both sides: proves they run, measures nothing.
    if command -v node >/dev/null && command -v npm >/dev/null; then
      "$root/tests/benchmarks/run_side_by_side.sh" --quick --out "$build_root/bench-table-quick.md" "$bench" \
        -- --benchmark_min_time=0.01 --krmx_quick
    else
      say "node/npm not found: C++ side only (for the reference: apt-get install nodejs npm)"
      "$bench" --benchmark_min_time=0.01 --benchmark_repetitions=1 --krmx_quick
    fi
    net_load --quick
    memory_bench --quick
    return
  fi
  "$root/tests/benchmarks/run_side_by_side.sh" --out "$build_root/bench-table.md" "$bench"
  net_load
  memory_bench
}

# The memory benchmark (SQLite builds only): a durable domain's RSS from 1 k to 10 M events with the whole
# stream in memory and with a tail and snapshots, a restart from a snapshot against a full replay, and a late
# C++ joiner (table, JSON lines and the plot beside it). --quick: 1 k and 20 k events.
memory_bench() {
  local bin="$build/tests/benchmarks/krmx_memory_bench" out="$build_root/memory-table.md"
  if [ ! -x "$bin" ]; then
    say "no memory benchmark in $build (needs SQLite: apt-get install libsqlite3-dev)"
    return 0
  fi
  [ "${1:-}" = "--quick" ] && out="$build_root/memory-table-quick.md"
  say "memory benchmark ${1:-}"
  "$root/tests/benchmarks/run_memory.sh" "$@" --out "$out" "$bin"
}

# The network load benchmarks (krmx::websocket builds only): our server and the Node stack side by side, in
# closed loop (one domain) and in open loop (rooms, one room, a rate sweep); then the hostile load test:
# honest players with and without abusive clients, and a username spray (--quick fails when an honest player
# was unlinked or the server died).
net_load() {
  local server="$build/tests/benchmarks/krmx_net_bench_server" load="$build/tests/benchmarks/krmx_net_load"
  local abuse="$build/tests/benchmarks/krmx_net_abuse"
  if [ ! -x "$server" ] || [ ! -x "$load" ]; then
    say "no network load benchmark in $build (needs Boost: apt-get install libboost-dev)"
    return 0
  fi
  local out="$build_root/net-load-table.md" hostile_out="$build_root/hostile-load-table.md"
  if [ "${1:-}" = "--quick" ]; then
    out="$build_root/net-load-table-quick.md" hostile_out="$build_root/hostile-load-table-quick.md"
  fi
  say "network load benchmark ${1:-}"
  "$root/tests/benchmarks/run_net_load.sh" "$@" --out "$out" "$server" "$load"
  say "open-loop load benchmark: rooms, one room, the highest rate at p99 under 50 ms ${1:-}"
  "$root/tests/benchmarks/run_open_load.sh" "$@" --out "${out/net-load-table/open-load-table}" "$server" "$load"
  [ -x "$abuse" ] || die "no $abuse (the hostile load test's abusive clients)"
  say "hostile load test ${1:-}"
  "$root/tests/benchmarks/run_hostile_load.sh" "$@" --out "$hostile_out" "$server" "$load" "$abuse"
}

# install PREFIX: counter_server (Release, stripped) in PREFIX/bin and the web page in PREFIX/share/krmx/web.
# --build DIR: take counter_server from a build tree that has it (the test suite's), instead of building it;
# --web SITE: copy a web page already bundled (examples/web/build.mjs), instead of bundling it.
cmd_install() {
  local prefix="" build="" web=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --build) build="$2"; shift ;;
      --web) web="$2"; shift ;;
      -*) die "unknown install option: $1" ;;
      *) [ -z "$prefix" ] || die "install takes one PREFIX"; prefix="$1" ;;
    esac
    shift
  done
  [ -n "$prefix" ] || die "usage: scripts/krmx.sh install PREFIX [--build DIR] [--web SITE]"
  if [ -z "$build" ]; then
    need_packages "${server_packages[@]}"
    build="$build_root/install"
    build_counter_server "$build"
  fi
  local binary="$build/examples/counter_server/counter_server"
  [ -x "$binary" ] || die "no counter_server in $build"
  if [ -z "$web" ]; then
    web="$build/web"
    bundle_web_page "$web"
  fi
  [ -f "$web/index.html" ] || die "no web page in $web"
  say "install into $prefix"
  mkdir -p "$prefix/bin" "$prefix/share/krmx"
  install -m 0755 -s "$binary" "$prefix/bin/counter_server"
  rm -rf "$prefix/share/krmx/web"
  cp -R "$web" "$prefix/share/krmx/web"
}

cmd_fuzz() {
  local seconds=600
  while [ $# -gt 0 ]; do
    case "$1" in
      --seconds) seconds="$2"; shift ;;
      *) die "unknown fuzz option: $1" ;;
    esac
    shift
  done
  need_packages "${test_packages[@]}"
  mkdir -p "$build_root"
  local dir="$build_root/fuzz"
  say "configure $dir (clang++, libFuzzer)"
  cmake -S "$root" -B "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKRMX_HEADER_CHECKS=OFF \
    -DKRMX_BUILD_BENCHMARKS=OFF -DKRMX_BUILD_EXAMPLES=OFF -DKRMX_FUZZ_SECONDS="$seconds" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; die "configure failed ($dir)"; }
  cmake --build "$dir" --parallel "$jobs" --target krmx_fuzz_json krmx_fuzz_host krmx_fuzz_client krmx_fuzz_delta krmx_fuzz_projection
  say "fuzzing each harness for $seconds s"
  ctest --test-dir "$build_root/fuzz" --output-on-failure --parallel "$jobs" -L fuzz
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  fuzz) shift; cmd_fuzz "$@" ;;
  install) shift; cmd_install "$@" ;;
  *) echo "usage: scripts/krmx.sh demo [--timeline] [--port N] | test | bench [--quick] | fuzz [--seconds N] | install PREFIX [--build DIR] [--web SITE]" >&2; exit 2 ;;
esac

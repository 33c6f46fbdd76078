#!/usr/bin/env bash
# Runs the krmx-cpp Google Benchmark binary and the TypeScript reference (@krmx/state@0.0.1 under
# Node, tests/benchmarks/reference) on this machine, one after the other, and prints one markdown
# table of the ratios against the targets (README, "Benchmarks"). The table is also saved to
# build/bench-table.md.
#
# Usage:
#   tests/benchmarks/run_side_by_side.sh [options] BENCH_BINARY [-- extra Google Benchmark args]
# Options:
#   --quick          one short repetition on both sides (smoke test; figures are rough)
#   --cpp-json FILE  use an existing Google Benchmark JSON file instead of running BENCH_BINARY
#   --ref-json FILE  use an existing reference JSON file instead of running the Node bench
#   --out FILE       where to save the table (default: <repo>/build/bench-table.md)
#
# Needs Node.js 20 and npm (JSON handling is done with node; no python or jq needed).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "${script_dir}/../.." && pwd)
reference_dir="${script_dir}/reference"

quick=0
cpp_json_in=""
ref_json_in=""
out_file="${repo_root}/build/bench-table.md"
bench_binary=""
extra_args=()

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --cpp-json) cpp_json_in="${2:?--cpp-json needs a file}"; shift 2 ;;
    --ref-json) ref_json_in="${2:?--ref-json needs a file}"; shift 2 ;;
    --out) out_file="${2:?--out needs a file}"; shift 2 ;;
    -h|--help) usage ;;
    --) shift; extra_args=("$@"); break ;;
    -*) echo "error: unknown option $1" >&2; usage ;;
    *)
      if [[ -n "${bench_binary}" ]]; then echo "error: more than one BENCH_BINARY" >&2; usage; fi
      bench_binary="$1"; shift ;;
  esac
done

if [[ -z "${cpp_json_in}" ]]; then
  if [[ -z "${bench_binary}" ]]; then
    echo "error: BENCH_BINARY is required (the krmx-cpp Google Benchmark executable)" >&2
    usage
  fi
  if [[ ! -x "${bench_binary}" ]]; then
    echo "error: ${bench_binary} is not an executable file; build the benchmarks first" >&2
    exit 1
  fi
fi

# --- prerequisites --------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  cat >&2 <<'EOF'
error: node is not installed. The reference benchmark and this script's JSON handling need
Node.js 20 and npm, for example:
  Debian/Ubuntu:  sudo apt-get install nodejs npm        (check that `node --version` is v20.x)
  or NodeSource:  https://github.com/nodesource/distributions  (setup_20.x, then apt-get install nodejs)
  or nvm:         nvm install 20
EOF
  exit 1
fi
node_version=$(node --version)
if [[ "${node_version}" != v20.* ]]; then
  echo "warning: the reference figures are defined for Node 20; this is node ${node_version}" >&2
fi

# Load before our own runs: other work on the machine skews the ratios.
load_avg=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/krmx-side-by-side.XXXXXX")
trap 'rm -rf "${work_dir}"' EXIT

# --- C++ side ---------------------------------------------------------------------------------
cpp_json="${work_dir}/cpp.json"
if [[ -n "${cpp_json_in}" ]]; then
  cp "${cpp_json_in}" "${cpp_json}"
else
  repetitions=5
  if [[ ${quick} -eq 1 ]]; then repetitions=1; fi
  echo "== running ${bench_binary} (${repetitions} repetitions)" >&2
  "${bench_binary}" --benchmark_format=json --benchmark_repetitions="${repetitions}" \
    --benchmark_report_aggregates_only=true "${extra_args[@]}" >"${cpp_json}"
fi

# --- reference side ---------------------------------------------------------------------------
ref_json="${work_dir}/ref.json"
if [[ -n "${ref_json_in}" ]]; then
  cp "${ref_json_in}" "${ref_json}"
else
  if [[ ! -d "${reference_dir}/node_modules/@krmx/state" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
      cat >&2 <<'EOF'
error: npm is not installed, and tests/benchmarks/reference/node_modules is missing.
Install npm (Debian/Ubuntu: sudo apt-get install npm; it comes with NodeSource's nodejs and
with nvm), then rerun; this script runs `npm ci` in tests/benchmarks/reference itself.
EOF
      exit 1
    fi
    echo "== npm ci in ${reference_dir}" >&2
    (cd "${reference_dir}" && npm ci --no-audit --no-fund >&2)
  fi
  node_args=()
  if [[ ${quick} -eq 1 ]]; then node_args+=(--quick); fi
  echo "== running the reference (@krmx/state under node ${node_version})" >&2
  if ! node "${reference_dir}/bench.mjs" "${node_args[@]}" >"${ref_json}"; then
    echo "warning: the reference benchmark failed; its column will be empty" >&2
    echo '{}' >"${ref_json}"
  fi
fi

# --- machine ----------------------------------------------------------------------------------
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*:[[:space:]]*//' || true)
cpu_model=${cpu_model:-unknown}
cores=$(nproc 2>/dev/null || echo '?')
compiler="unknown"
build_type=""
if [[ -n "${bench_binary}" ]]; then
  # Find the CMake cache of the build tree that holds the binary.
  dir=$(cd "$(dirname "${bench_binary}")" && pwd)
  while [[ "${dir}" != "/" ]]; do
    if [[ -f "${dir}/CMakeCache.txt" ]]; then
      cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "${dir}/CMakeCache.txt" | head -n1)
      build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "${dir}/CMakeCache.txt" | head -n1)
      if [[ -n "${cxx}" && -x "${cxx}" ]]; then
        compiler=$("${cxx}" --version 2>/dev/null | head -n1 || echo "${cxx}")
      elif [[ -n "${cxx}" ]]; then
        compiler="${cxx}"
      fi
      break
    fi
    dir=$(dirname "${dir}")
  done
fi

# --- table ------------------------------------------------------------------------------------
mkdir -p "$(dirname "${out_file}")"
KRMX_CPU="${cpu_model}" KRMX_CORES="${cores}" KRMX_LOAD="${load_avg}" KRMX_NODE="${node_version}" \
KRMX_COMPILER="${compiler}" KRMX_BUILD_TYPE="${build_type}" KRMX_QUICK="${quick}" \
node - "${cpp_json}" "${ref_json}" >"${work_dir}/table.md" <<'EOF'
const fs = require('fs');
const [cppPath, refPath] = process.argv.slice(2);

const readJson = (path, what) => {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    console.error(`warning: could not read ${what} JSON (${err.message}); its column will be empty`);
    return {};
  }
};
const cpp = readJson(cppPath, 'Google Benchmark');
const ref = readJson(refPath, 'reference');

// Google Benchmark name parts that are options rather than arguments.
const OPTION_PART = /^(real_time|process_time|manual_time|min_time:.*|min_warmup_time:.*|iterations:.*|repeats:.*|threads:\d+)$/;
const normalize = (name) => name.split('/').filter((p) => !OPTION_PART.test(p)).join('/');

// Per benchmark: prefer the median aggregate; fall back to a single (non-aggregate) run.
const results = new Map();
for (const b of cpp.benchmarks ?? []) {
  if (b.error_occurred) {
    console.error(`warning: ${b.name}: ${b.error_message ?? 'error'}`);
    continue;
  }
  const base = normalize(b.run_name ?? b.name.replace(/_(mean|median|stddev|cv)$/, ''));
  const isMedian = b.run_type === 'aggregate' && b.aggregate_name === 'median';
  const isIteration = (b.run_type ?? 'iteration') === 'iteration';
  if (!isMedian && !isIteration) continue;
  const prev = results.get(base);
  if (isMedian || !prev) {
    results.set(base, { ...b, _median: isMedian, _repeats: isMedian ? null : (prev?._repeats ?? 0) + 1 });
  } else if (!prev._median) {
    prev._repeats += 1; // several plain repetitions without aggregates: keep the first
  }
}

const fmtRate = (x) => {
  if (x === undefined || x === null || !Number.isFinite(x)) return '—';
  if (x >= 1e9) return `${(x / 1e9).toPrecision(3)} G`;
  if (x >= 1e6) return `${(x / 1e6).toPrecision(3)} M`;
  if (x >= 1e3) return `${(x / 1e3).toPrecision(3)} k`;
  return x.toPrecision(3);
};
const fmtRatio = (x) => (Number.isFinite(x) ? (x >= 100 ? `${Math.round(x)}x` : `${x.toPrecision(3)}x`) : '—');
const rateOf = (name) => results.get(name)?.items_per_second;

const lines = [];
const out = (s = '') => lines.push(s);

out('## krmx-cpp vs @krmx/state@0.0.1 (side by side, same machine, same run)');
out();
const ctx = cpp.context ?? {};
out(`- machine: ${process.env.KRMX_CORES} cores (nproc), ${process.env.KRMX_CPU}`
  + (ctx.mhz_per_cpu ? `, ${ctx.mhz_per_cpu} MHz` : '')
  + `; load average before the runs ${process.env.KRMX_LOAD}`);
out(`- reference: node ${process.env.KRMX_NODE}, @krmx/state 0.0.1`);
out(`- krmx-cpp: compiler ${process.env.KRMX_COMPILER}`
  + (process.env.KRMX_BUILD_TYPE ? `, CMAKE_BUILD_TYPE=${process.env.KRMX_BUILD_TYPE}` : '')
  + (ctx.library_build_type ? `, Google Benchmark library ${ctx.library_build_type}` : '')
  + (ctx.date ? `, run ${ctx.date}` : ''));
if (process.env.KRMX_QUICK === '1') out('- **quick mode**: one short repetition each, figures are rough');
const singles = [...results.values()].filter((r) => !r._median).length;
if (singles > 0 && process.env.KRMX_QUICK !== '1') {
  out(`- note: ${singles} C++ benchmark(s) had no median aggregate; a single repetition is shown`);
}
out();

const rows = [
  // workload, C++ name, target ratio (null: none)
  ['typed_dispatch', 'BM_typed_dispatch', 100],
  ['json_dispatch', 'BM_json_dispatch', 10],
  ['optimistic_confirm_100', 'BM_optimistic_confirm/100', 1000],
  ['optimistic_confirm_1000', 'BM_optimistic_confirm/1000', null],
  ['rejected_big', 'BM_rejected_big', 100],
  ['rejected_tiny', 'BM_rejected_tiny', null],
  ['projection_rooms', 'BM_projection_rooms', 10],
];
out('| workload | krmx-cpp (ops/s) | reference (ops/s) | ratio | target | met? |');
out('|---|---:|---:|---:|---:|:---:|');
let missed = 0;
for (const [workload, cppName, target] of rows) {
  const c = rateOf(cppName);
  const r = ref[workload];
  const ratio = Number.isFinite(c) && Number.isFinite(r) && r > 0 ? c / r : NaN;
  let met = '—';
  if (target !== null && Number.isFinite(ratio)) {
    met = ratio >= target ? 'yes' : 'NO';
    if (ratio < target) missed += 1;
  }
  out(`| ${workload} | ${fmtRate(c)} | ${fmtRate(r)} | ${fmtRatio(ratio)} | ${target === null ? '—' : `>= ${target}x`} | ${met} |`);
}
out();

// rejected_big must cost about the same as rejected_tiny on the C++ side.
{
  const bigRate = rateOf('BM_rejected_big');
  const tinyRate = rateOf('BM_rejected_tiny');
  if (Number.isFinite(bigRate) && Number.isFinite(tinyRate)) {
    const slowdown = tinyRate / bigRate;
    const ok = slowdown <= 2;
    if (!ok) missed += 1;
    out(`- rejected_big within 2x of rejected_tiny (krmx-cpp): ${ok ? 'yes' : 'NO'} `
      + `(tiny/big = ${slowdown.toPrecision(3)})`);
  } else {
    out('- rejected_big within 2x of rejected_tiny (krmx-cpp): — (benchmark missing)');
  }
}
out();

// C++-only rows: the server path and durable domains, durable stores and replay, absolute targets.
const cppOnly = [
  ['BM_server_path', null],
  ['BM_durable_server_sqlite_synced', null],
  ['BM_replay_memory', null],
  ['BM_replay', 1e6],
  ['BM_catch_up', null],
  ['BM_sqlite_append_synced', null],
  ['BM_sqlite_append_group', 200e3],
  ['BM_append_batched/sqlite', null],
  ['BM_append_batched/postgres', 100e3],
  ['BM_append_concurrent', null],
];
const counterNames = ['bytes_per_event', 'peak_rss_mb'];
out('| krmx-cpp only | events/s | target | met? | bytes_per_event | peak_rss_mb |');
out('|---|---:|---:|:---:|---:|---:|');
const fmtCounter = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
for (const [family, target] of cppOnly) {
  const variants = [...results.keys()].filter((n) => n === family || n.startsWith(`${family}/`)).sort();
  const names = variants.length > 0 ? variants : [family];
  for (const name of names) {
    const r = results.get(name);
    const rate = r?.items_per_second;
    let met = '—';
    if (target !== null && Number.isFinite(rate)) {
      met = rate >= target ? 'yes' : 'NO';
      if (rate < target) missed += 1;
    }
    out(`| ${name} | ${fmtRate(rate)} | ${target === null ? '—' : `>= ${fmtRate(target)}`} | ${met} `
      + `| ${fmtCounter(r?.[counterNames[0]], 1)} | ${fmtCounter(r?.[counterNames[1]], 1)} |`);
  }
}
// Memory counters reported by any other benchmark.
const listed = new Set(cppOnly.map(([f]) => f));
const others = [...results.entries()].filter(([name, r]) =>
  ![...listed].some((f) => name === f || name.startsWith(`${f}/`))
  && counterNames.some((c) => Number.isFinite(r[c])));
if (others.length > 0) {
  out();
  out('| benchmark | bytes_per_event | peak_rss_mb |');
  out('|---|---:|---:|');
  for (const [name, r] of others) {
    out(`| ${name} | ${fmtCounter(r.bytes_per_event, 1)} | ${fmtCounter(r.peak_rss_mb, 1)} |`);
  }
}
out();
out(missed === 0 ? 'All measured targets met.' : `${missed} target(s) missed.`);
process.stdout.write(`${lines.join('\n')}\n`);
EOF

cp "${work_dir}/table.md" "${out_file}"
cat "${work_dir}/table.md"
echo "(saved to ${out_file})" >&2

#pragma once
// Shared by the benchmark files: quick mode (each workload once, small sizes) for the CI smoke run.

#include <cstddef>

extern bool krmx_bench_quick;

/// `full` in a measuring run, `quick` in the smoke run.
inline std::size_t krmx_bench_size(std::size_t full, std::size_t quick) {
    return krmx_bench_quick ? quick : full;
}

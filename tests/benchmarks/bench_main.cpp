// The benchmark main: Google Benchmark's, plus --krmx_quick (shrinks workloads for the smoke run).
#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_common.hpp"

bool krmx_bench_quick = false;

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--krmx_quick") == 0) {
            krmx_bench_quick = true;
        } else {
            args.push_back(argv[i]);
        }
    }
    int count = static_cast<int>(args.size());
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

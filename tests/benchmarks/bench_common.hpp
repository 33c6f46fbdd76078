#pragma once
// Shared by the benchmark files: quick mode (each workload once, small sizes) for the CI smoke run.

#include <cstddef>
#include <fstream>
#include <string>

#include <malloc.h>

#include <benchmark/benchmark.h>

extern bool krmx_bench_quick;

/// Logs grow by an entry per accepted event: benchmarks start over after this many, so memory stays bounded.
inline constexpr std::size_t krmx_bench_events_per_round = std::size_t{1} << 20;

/// `full` in a measuring run, `quick` in the smoke run.
inline std::size_t krmx_bench_size(std::size_t full, std::size_t quick) {
    return krmx_bench_quick ? quick : full;
}

/// Peak resident memory of a phase (Linux): reset the high-water mark, run the phase, read it back.
/// The mark counts everything resident, so it includes data loaded before the phase (the store).
class PeakResidentMemory {
  public:
    PeakResidentMemory() {
        // Hand memory freed by earlier benchmarks back to the system first, or it would count here.
        ::malloc_trim(0);
        // Writing "5" to clear_refs resets VmHWM to the current resident size (Linux 4.0+).
        std::ofstream clear{"/proc/self/clear_refs"};
        clear << "5";
        clear.flush();
        reset_ = static_cast<bool>(clear);
    }
    /// Megabytes, or a negative number when the mark could not be reset or read (then it is not reported).
    [[nodiscard]] double megabytes() const {
        if (!reset_) return -1;
        std::ifstream status{"/proc/self/status"};
        std::string line;
        while (std::getline(status, line)) {
            if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
        }
        return -1;
    }
    void report(benchmark::State& state) const {
        if (const double mb = megabytes(); mb >= 0) state.counters["peak_rss_mb"] = mb;
    }

  private:
    bool reset_ = false;
};

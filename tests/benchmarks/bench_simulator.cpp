// The simulator's throughput: seeded schedules of a 4-player claimable counter game (players joining,
// lag, disconnects, restarts from the store, failing commits), each through the Hub, the production session,
// a durable StreamDomain and four StreamClients, then every check (convergence, refusals, lost events, the
// replay of the stored log, twice). The aim: at least 10 000 schedules a minute on one core, so that a
// game's CI can afford thousands of them. Reported as schedules_per_minute.
#include <cstdint>

#include <benchmark/benchmark.h>

#include <krmx/testing/simulator.hpp>

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"
#include "counter_player.hpp"

namespace {

void BM_simulator_schedules(benchmark::State& state) {
    auto sim = krmx::testing::Simulator<Counter>{counter::model()}.players(4, 4).generate(counter_move);
    const std::size_t batch = krmx_bench_size(100, 5);
    std::uint64_t seed = 1;
    std::size_t schedules = 0;
    std::size_t events = 0;
    for (auto _ : state) {
        const auto report = sim.run(batch, seed);
        seed += batch;
        if (!report.ok()) {
            state.SkipWithError(report.str().c_str());
            return;
        }
        schedules += report.schedules;
        events += report.events;
    }
    state.counters["schedules_per_minute"] =
        benchmark::Counter(static_cast<double>(schedules) * 60.0, benchmark::Counter::kIsRate);
    state.counters["events_per_schedule"] = static_cast<double>(events) / static_cast<double>(schedules);
}

}  // namespace

BENCHMARK(BM_simulator_schedules)->Unit(benchmark::kMillisecond)->UseRealTime();

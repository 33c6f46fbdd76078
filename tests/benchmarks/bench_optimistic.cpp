// The optimistic client: K pending increments confirmed one by one by the server's echoes.
// BM_optimistic_confirm matches optimistic_confirm_K of tests/benchmarks/reference/bench.mjs: only the
// K confirmations are timed, each from an already parsed event object (the reference hands its stream a
// parsed JavaScript object). The other variants show what dispatching and JSON decoding add.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>
#include <krmx/krmx.hpp>
#include <krmx/stream/optimistic_stream.hpp>

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"

namespace {

void keep_bounded(benchmark::State& state, krmx::OptimisticStream<Counter>& client) {
    if (client.confirmed_size() >= krmx_bench_events_per_round) [[unlikely]] {
        state.PauseTiming();
        client.reset();
        state.ResumeTiming();
    }
}

// Each echo is what the client's sync layer hands over after parsing a `stream/append`: the dispatcher,
// the event object as JSON, the position and the echoed id.
void BM_optimistic_dispatch_and_confirm(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    krmx::OptimisticStream<Counter> client{counter::model()};
    client.set_user("alice");
    std::vector<krmx::OptimisticDispatch> sent;
    sent.reserve(k);
    for (auto _ : state) {
        sent.clear();
        for (std::size_t i = 0; i < k; ++i) sent.push_back(client.dispatch(counter::increment(1)));
        const std::size_t base = client.confirmed_size();
        for (std::size_t i = 0; i < k; ++i) {
            auto result = client.receive("alice", sent[i].event, base + i, sent[i].id);
            benchmark::DoNotOptimize(result);
        }
        keep_bounded(state, client);
    }
    const auto& counters = client.counters();
    if (client.pending_count() != 0 || counters.rebuilds != 0 ||
        counters.confirmed_in_place != state.iterations() * k) {
        state.SkipWithError("a confirmation took the slow path");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k));
}
BENCHMARK(BM_optimistic_dispatch_and_confirm)->Arg(100)->Arg(1000);

// What the reference times: only the K confirmations (the dispatches happen with the timer paused).
void BM_optimistic_confirm(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    krmx::OptimisticStream<Counter> client{counter::model()};
    client.set_user("alice");
    std::vector<krmx::OptimisticDispatch> sent;
    sent.reserve(k);
    for (auto _ : state) {
        state.PauseTiming();
        sent.clear();
        for (std::size_t i = 0; i < k; ++i) sent.push_back(client.dispatch(counter::increment(1)));
        const std::size_t base = client.confirmed_size();
        state.ResumeTiming();
        for (std::size_t i = 0; i < k; ++i) {
            auto result = client.receive("alice", sent[i].event, base + i, sent[i].id);
            benchmark::DoNotOptimize(result);
        }
        keep_bounded(state, client);
    }
    if (client.pending_count() != 0 || client.counters().rebuilds != 0) {
        state.SkipWithError("a confirmation took the slow path");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k));
}
BENCHMARK(BM_optimistic_confirm)->Arg(100)->Arg(1000);

// The algorithm alone: confirmations only, with typed echoes (an in-process server), so no JSON is
// decoded on receipt. The gap to BM_optimistic_confirm is the JSON decoding of the echo.
void BM_optimistic_confirm_typed(benchmark::State& state) {
    const auto k = static_cast<std::size_t>(state.range(0));
    krmx::OptimisticStream<Counter> client{counter::model()};
    client.set_user("alice");
    std::vector<std::uint64_t> ids(k);
    for (auto _ : state) {
        state.PauseTiming();
        for (std::size_t i = 0; i < k; ++i) ids[i] = *client.dispatch(counter::increment(1)).id;
        const std::size_t base = client.confirmed_size();
        state.ResumeTiming();
        for (std::size_t i = 0; i < k; ++i) {
            auto result = client.receive("alice", counter::increment(1), base + i, ids[i]);
            benchmark::DoNotOptimize(result);
        }
        keep_bounded(state, client);
    }
    if (client.pending_count() != 0 || client.counters().rebuilds != 0) {
        state.SkipWithError("a confirmation took the slow path");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * k));
}
BENCHMARK(BM_optimistic_confirm_typed)->Arg(100);

}  // namespace

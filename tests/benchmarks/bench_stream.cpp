// The authoritative stream: typed dispatch, dispatch from the wire, and rejections on small and big states.
// Workloads match tests/benchmarks/reference/bench.mjs (the TypeScript reference) one for one.
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <krmx/krmx.hpp>

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"

namespace {

template <class State>
void keep_bounded(benchmark::State& state, krmx::Stream<State>& stream) {
    if (stream.size() >= krmx_bench_events_per_round) [[unlikely]] {
        state.PauseTiming();
        stream.reset();
        state.ResumeTiming();
    }
}

void BM_typed_dispatch(benchmark::State& state) {
    krmx::Stream<Counter> stream{counter::model()};
    for (auto _ : state) {
        auto result = stream.dispatch("alice", counter::increment(1));
        benchmark::DoNotOptimize(result);
        keep_bounded(state, stream);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_typed_dispatch);

// A whole `stream/append` message as it arrives on a socket: read it once (as the session does), find the
// domain and the event among the scanned members (as the host and the domain do), dispatch the event from
// those members.
void BM_json_dispatch(benchmark::State& state) {
    krmx::Stream<Counter> stream{counter::model()};
    const std::string message =
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice",)"
        R"("event":{"type":"increment","payload":3},"id":17}})";
    krmx::MessageReader reader;
    for (auto _ : state) {
        if (!reader.read(message).empty()) state.SkipWithError("invalid");
        const auto& read = reader.message();
        if (read.field("domain")->value != R"("counter")") state.SkipWithError("domain");
        const auto* event = read.field("event");
        auto result = stream.dispatch_scanned("alice", event->value, read.members_of(*event));
        benchmark::DoNotOptimize(result);
        keep_bounded(state, stream);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_json_dispatch);

// Claimed by alice; bob's increment is refused. The refusal must not cost anything that grows with the state.
struct BigCounter : Counter {
    std::vector<int> data = std::vector<int>(100'000, 1);
};

template <class State>
void rejected(benchmark::State& state) {
    krmx::Stream<State> stream{counter::model<State>()};
    (void)stream.dispatch("alice", counter::claim());
    for (auto _ : state) {
        auto result = stream.dispatch("bob", counter::increment(1));
        benchmark::DoNotOptimize(result);
    }
    if (stream.size() != 1 || stream.counters().rollbacks != 0)
        state.SkipWithError("a rejection changed the stream");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
void BM_rejected_big(benchmark::State& state) {
    rejected<BigCounter>(state);
}
void BM_rejected_tiny(benchmark::State& state) {
    rejected<Counter>(state);
}
BENCHMARK(BM_rejected_big);
BENCHMARK(BM_rejected_tiny);

}  // namespace

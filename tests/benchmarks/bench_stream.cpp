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

// A whole `stream/append` message as it arrives on a socket: validate it, find the event, dispatch it.
void BM_json_dispatch(benchmark::State& state) {
    krmx::Stream<Counter> stream{counter::model()};
    const std::string message =
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice",)"
        R"("event":{"type":"increment","payload":3},"id":17}})";
    std::vector<krmx::detail::JsonMember> outer;
    std::vector<krmx::detail::JsonMember> inner;
    for (auto _ : state) {
        outer.clear();
        inner.clear();
        if (!krmx::detail::scan_object(message, outer, "payload", inner).empty())
            state.SkipWithError("invalid");
        if (krmx::detail::find_member(inner, "domain")->value != R"("counter")")
            state.SkipWithError("domain");
        auto result = stream.dispatch_text("alice", krmx::detail::find_member(inner, "event")->value);
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

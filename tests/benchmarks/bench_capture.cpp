// What a durable domain's loop pays for the captures of a large state (the copy that becomes the stream's
// floor and its snapshot): events dispatched one at a time into a pipelined domain with a short tail (a
// capture every 128 events), the loop's own work timed (each dispatch, and each function posted back to it;
// not the waits for the writer). The longest is a capture's: the copy of the state, and, where the JSON is
// written on the loop, the JSON.
// range(0): the state's cells (an int each; 1 Mi cells are about 2 MB of JSON).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <krmx/net/session.hpp>
#include <krmx/store/checkpoint_store.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "bench_common.hpp"
#include "counting_sink.hpp"
#include "mailbox.hpp"

namespace capture_bench {

struct Board {
    std::vector<int> cells;
    std::int64_t moves = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Board, cells, moves)

inline constexpr krmx::EventType<int> move{"move"};

krmx::StreamModel<Board> model(std::size_t cells) {
    auto m = krmx::StreamModel<Board>{Board{std::vector<int>(cells, 0), 0}}.when(move, [](Board& b, std::string_view, int n) {
        b.cells[static_cast<std::size_t>(n) % b.cells.size()] += 1;
        ++b.moves;
    });
    m.snapshots(1);
    return m;
}

void BM_capture_loop_step(benchmark::State& state) {
    using Clock = std::chrono::steady_clock;
    const auto cells = krmx_bench_size(static_cast<std::size_t>(state.range(0)), 1024);
    const auto board = model(cells);
    // The loop's own time: each dispatch, and each function posted back to it, timed (not the waits).
    Clock::duration longest{};
    Clock::duration busy{};
    const auto timed = [&](auto&& f) {
        const auto start = Clock::now();
        f();
        const auto took = Clock::now() - start;
        longest = std::max(longest, took);
        busy += took;
    };
    krmx::testing::Mailbox loop;
    auto post = [&, to_loop = loop.poster()](std::function<void()> f) {
        to_loop([&timed, f = std::move(f)] { timed(f); });
    };
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    CountingSink sink;  // (no one links: the domain sends nothing)
    krmx::net::Session session{sink};
    krmx::DomainHost host{session};
    krmx::StreamDomain server{
        host, "board", board,
        {.durability = krmx::durable(store, {.post = post,
                                             .memory = {.tail_events = 256, .snapshot_every_events = 1024},
                                             .snapshots = checkpoints})}};
    std::int64_t steps = 0;
    int n = 0;
    for (auto _ : state) {
        timed([&] {
            if (!server.dispatch("<server>", move(n++))) state.SkipWithError("refused");
        });
        while (server.uncommitted() > 0) (void)loop.wait_and_run(std::chrono::milliseconds{50});
        (void)loop.run_posted();
        ++steps;
    }
    // (After the timed loop: the captures still being written come back.)
    for (int i = 0; i < 20 && loop.wait_and_run(std::chrono::milliseconds{50}) > 0; ++i) {
    }
    const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
    state.counters["longest_loop_ms"] = ms(longest);
    state.counters["loop_ms_per_event"] = steps == 0 ? 0.0 : ms(busy) / static_cast<double>(steps);
    state.counters["snapshots_saved"] = static_cast<double>(server.snapshot_statistics().saved);
    state.SetItemsProcessed(steps);
}
BENCHMARK(BM_capture_loop_step)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->Iterations(4096);

}  // namespace capture_bench

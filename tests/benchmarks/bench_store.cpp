// Event stores: durable appends (synced and group commit) and replay of 1 M stored events.
// The replay folds each event's JSON payload into a counter, as a read model over the log would.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/stream/stream.hpp>
#if __has_include(<sqlite3.h>)
#include <krmx/store/sqlite_event_store.hpp>
#endif

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"
#include "temp_dir.hpp"

namespace {

constexpr std::size_t replay_batch = 4096;

krmx::NewEvent counter_event(std::int64_t n) {
    krmx::NewEvent event;
    event.type = "increment";
    event.payload = n;
    event.dispatcher = "alice";
    return event;
}

// Reads every event after position 0 in batches and dispatches each into an authoritative stream of the
// claimable counter, as a server does on start; returns the events read. The stream keeps its log, so
// its memory is part of the replay's peak.
template <class Store>
std::uint64_t replay(const Store& store, std::int64_t& counter) {
    krmx::Stream<Counter> stream{counter::model()};
    std::uint64_t events = 0;
    krmx::Position after = 0;
    for (;;) {
        const auto batch = store.read_all(after, replay_batch);
        if (batch.empty()) break;
        for (const auto& event : batch) {
            if (!stream.dispatch(event.dispatcher, event.type, event.payload ? &*event.payload : nullptr))
                [[unlikely]] {
                throw std::runtime_error("replay: a stored event was refused");
            }
        }
        events += batch.size();
        after = batch.back().position;
    }
    counter += stream.state().counter;
    return events;
}

template <class Store>
void fill(Store& store, std::size_t count) {
    std::vector<krmx::NewEvent> batch;
    for (std::size_t i = 0; i < count;) {
        batch.clear();
        for (std::size_t k = 0; k < 1000 && i < count; ++k, ++i)
            batch.push_back(counter_event(static_cast<std::int64_t>(i % 7)));
        (void)store.append("counter", krmx::ExpectedRevision::any(), batch);
    }
}

// Times replays of the whole store, with the peak resident memory while they run (store already loaded).
template <class Store>
void measure_replay(benchmark::State& state, const Store& store, std::size_t count) {
    std::int64_t counter = 0;
    std::uint64_t events = 0;
    const PeakResidentMemory peak;
    for (auto _ : state) {
        events += replay(store, counter);
        benchmark::DoNotOptimize(counter);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    state.counters["events"] = static_cast<double>(count);
    peak.report(state);
}

void BM_replay_memory(benchmark::State& state) {
    const std::size_t count = krmx_bench_size(1'000'000, 10'000);
    krmx::MemoryEventStore store;
    fill(store, count);
    measure_replay(state, store, count);
    state.counters["bytes_per_event"] = static_cast<double>(store.approximate_bytes_per_event());
}
BENCHMARK(BM_replay_memory)->Unit(benchmark::kMillisecond)->UseRealTime();

#if __has_include(<sqlite3.h>)

// A store file in a fresh temporary directory, removed afterwards.
struct TempStoreFile {
    krmx::testing::TempDir dir;
    [[nodiscard]] std::filesystem::path path() const { return dir.path() / "events.sqlite"; }
};

double bytes_per_event(const krmx::SqliteEventStore& store) {
    store.checkpoint_wal();
    const auto events = store.head_position();
    return events == 0
               ? 0.0
               : static_cast<double>(std::filesystem::file_size(store.path())) / static_cast<double>(events);
}

// One event per append from one thread; each append waits for its fsync.
void BM_sqlite_append_synced(benchmark::State& state) {
    TempStoreFile file;
    krmx::SqliteEventStore store{file.path(), {.durability = krmx::SqliteDurability::synced}};
    std::int64_t n = 0;
    for (auto _ : state) {
        auto result = store.append("counter", krmx::ExpectedRevision::any(), counter_event(n++ % 7));
        benchmark::DoNotOptimize(result);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
    state.counters["bytes_per_event"] = bytes_per_event(store);
}
BENCHMARK(BM_sqlite_append_synced)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Group commit: range(0) threads append concurrently, range(1) events per append, each thread to its own
// stream with an exact expected revision (the write-model pattern). Items are events.
void BM_sqlite_append_group(benchmark::State& state) {
    const auto threads = static_cast<int>(state.range(0));
    const auto per_append = static_cast<std::size_t>(state.range(1));
    const std::size_t events_per_thread = krmx_bench_size(20'000, 500);
    const std::size_t appends_per_thread = std::max<std::size_t>(events_per_thread / per_append, 1);
    TempStoreFile file;
    krmx::SqliteEventStore store{file.path(), {.durability = krmx::SqliteDurability::group_commit}};
    std::vector<std::optional<krmx::Revision>> revisions(static_cast<std::size_t>(threads));
    std::uint64_t events = 0;
    for (auto _ : state) {
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                const std::string stream = "player-" + std::to_string(t);
                auto& revision = revisions[static_cast<std::size_t>(t)];
                std::vector<krmx::NewEvent> batch;
                for (std::size_t a = 0; a < appends_per_thread; ++a) {
                    batch.clear();
                    for (std::size_t k = 0; k < per_append; ++k)
                        batch.push_back(counter_event(static_cast<std::int64_t>(k % 7)));
                    const auto expected = revision ? krmx::ExpectedRevision::exact(*revision)
                                                   : krmx::ExpectedRevision::no_stream();
                    revision = store.append(stream, expected, batch).last_revision;
                }
            });
        }
        for (auto& worker : workers) worker.join();
        events += static_cast<std::uint64_t>(threads) * appends_per_thread * per_append;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    state.counters["bytes_per_event"] = bytes_per_event(store);
}
BENCHMARK(BM_sqlite_append_group)
    ->ArgNames({"threads", "events_per_append"})
    ->Args({8, 1})
    ->Args({32, 1})
    ->Args({4, 10})
    ->Args({4, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_replay_sqlite(benchmark::State& state) {
    const std::size_t count = krmx_bench_size(1'000'000, 10'000);
    TempStoreFile file;
    krmx::SqliteEventStore store{file.path(), {.durability = krmx::SqliteDurability::group_commit}};
    fill(store, count);
    store.checkpoint_wal();
    measure_replay(state, store, count);
    state.counters["bytes_per_event"] = bytes_per_event(store);
}
BENCHMARK(BM_replay_sqlite)->Unit(benchmark::kMillisecond)->UseRealTime();

#endif

}  // namespace

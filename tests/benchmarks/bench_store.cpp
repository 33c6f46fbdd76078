// Event stores: durable appends (synced and group commit) and replay of 1 M stored events.
// The replay folds each event's JSON payload into a counter, as a read model over the log would.
// SQLite and PostgreSQL side by side (BM_<workload>/<store>/<durability>): batched appends, single appends
// from 8 connections, replay into a Stream, catch-up of a read model, bytes per stored event. PostgreSQL
// runs on a throw-away server of this process (tests/support/postgres_server.hpp) with fsync on.
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
#include <krmx/models/read_model.hpp>
#include <krmx/models/read_model_runner.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/stream/stream.hpp>
#if __has_include(<sqlite3.h>)
#include <krmx/store/sqlite_event_store.hpp>
#endif
#if defined(KRMX_BENCH_POSTGRES)
#include <krmx/store/postgres_event_store.hpp>

#include "postgres_server.hpp"
#endif

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"
#include "temp_dir.hpp"

namespace {

krmx::NewEvent counter_event(std::int64_t n) {
    krmx::NewEvent event;
    event.type = "increment";
    event.payload = n;
    event.dispatcher = "alice";
    return event;
}

// Streams every event after position 0 (krmx::for_each_event: a batch at a time) and dispatches each into
// an authoritative stream of the claimable counter, as a server does on start; returns the events read.
// The stream keeps its log, so its memory is part of the replay's peak.
template <class Store>
std::uint64_t replay(const Store& store, std::int64_t& counter) {
    krmx::Stream<Counter> stream{counter::model()};
    const std::size_t events = krmx::for_each_event(store, 0, [&](const krmx::RecordedEvent& event) {
        if (!stream.dispatch(event.dispatcher, event.type, event.payload ? &*event.payload : nullptr))
            [[unlikely]] {
            throw std::runtime_error("replay: a stored event was refused");
        }
    });
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

// One thread per entry of `revisions`, each appending `appends` times `per_append` events to its own stream
// with an exact expected revision (the write-model pattern); returns the events appended.
template <class Store>
std::uint64_t run_appenders(Store& store, std::vector<std::optional<krmx::Revision>>& revisions,
                            std::size_t appends, std::size_t per_append) {
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < revisions.size(); ++t) {
        workers.emplace_back([&, t] {
            const std::string stream = "player-" + std::to_string(t);
            auto& revision = revisions[t];
            std::vector<krmx::NewEvent> batch;
            for (std::size_t a = 0; a < appends; ++a) {
                batch.clear();
                for (std::size_t k = 0; k < per_append; ++k)
                    batch.push_back(counter_event(static_cast<std::int64_t>(k % 7)));
                const auto expected =
                    revision ? krmx::ExpectedRevision::exact(*revision) : krmx::ExpectedRevision::no_stream();
                revision = store.append(stream, expected, batch).last_revision;
            }
        });
    }
    for (auto& worker : workers) worker.join();
    return revisions.size() * appends * per_append;
}

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
    for (auto _ : state) events += run_appenders(store, revisions, appends_per_thread, per_append);
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

// ---- SQLite and PostgreSQL side by side ----

struct SqliteBackend {
    static constexpr const char* name = "sqlite";
    using Store = krmx::SqliteEventStore;
    TempStoreFile file;
    [[nodiscard]] std::unique_ptr<Store> open(bool synced) const {
        return std::make_unique<Store>(
            file.path(),
            krmx::SqliteEventStoreOptions{.durability = synced ? krmx::SqliteDurability::synced
                                                               : krmx::SqliteDurability::group_commit});
    }
    static void settle(const Store& store) { store.checkpoint_wal(); }
    [[nodiscard]] static double bytes_per_event(const Store& store) { return ::bytes_per_event(store); }
};

#if defined(KRMX_BENCH_POSTGRES)
// One server for the whole run, with fsync on: these are durability figures.
krmx::testing::PostgresServer& bench_postgres() {
    static krmx::testing::PostgresServer server{{.fsync = true}};
    return server;
}

struct PostgresBackend {
    static constexpr const char* name = "postgres";
    using Store = krmx::PostgresEventStore;
    krmx::PostgresOptions database{.connection = bench_postgres().conninfo(),
                                   .schema = krmx::testing::unique_postgres_schema("bench")};
    PostgresBackend() = default;
    PostgresBackend(const PostgresBackend&) = delete;
    PostgresBackend& operator=(const PostgresBackend&) = delete;
    ~PostgresBackend() {
        try {
            krmx::detail::PgConnection{database.connection}.exec("DROP SCHEMA " + database.schema +
                                                                 " CASCADE");
        } catch (...) {
            // The server and its folder go away at exit anyway.
        }
    }
    [[nodiscard]] std::unique_ptr<Store> open(bool synced) const {
        return std::make_unique<Store>(
            database,
            krmx::PostgresEventStoreOptions{.durability = synced ? krmx::PostgresDurability::synced
                                                                 : krmx::PostgresDurability::group_commit});
    }
    // After a bulk load, what autovacuum does to a store of any age, run now rather than in the middle of
    // the measurement: VACUUM sets the tuples' hint bits and the visibility map (the first reader of a fresh
    // row otherwise checks its transaction's status and dirties its page), ANALYZE the statistics, and a
    // checkpoint writes the dirty pages out.
    static void settle(const Store& store) {
        krmx::detail::PgConnection connection{store.database().connection};
        connection.exec("VACUUM ANALYZE " + store.database().schema + ".krmx_events");
        connection.exec("CHECKPOINT");
    }
    // Tables and indexes on disk (after VACUUM, which also sets the visibility map for index-only reads).
    [[nodiscard]] static double bytes_per_event(const Store& store) {
        krmx::detail::PgConnection connection{store.database().connection};
        const std::string s = store.database().schema;
        connection.exec("VACUUM " + s + ".krmx_events");
        const auto bytes = connection
                               .exec("SELECT pg_total_relation_size('" + s +
                                     ".krmx_events') + "
                                     "pg_total_relation_size('" +
                                     s + ".krmx_streams')")
                               .int64(0, 0);
        const auto events = store.head_position();
        return events == 0 ? 0.0 : static_cast<double>(bytes) / static_cast<double>(events);
    }
};
#endif

const char* durability_name(bool synced) {
    return synced ? "synced" : "group_commit";
}

// One thread, 100 events per append to one stream with an exact expected revision.
template <class Backend>
void append_batched(benchmark::State& state, bool synced) {
    Backend backend;
    auto store = backend.open(synced);
    constexpr std::size_t per_append = 100;
    std::vector<krmx::NewEvent> batch;
    for (std::size_t k = 0; k < per_append; ++k)
        batch.push_back(counter_event(static_cast<std::int64_t>(k % 7)));
    std::optional<krmx::Revision> revision;
    for (auto _ : state) {
        const auto expected =
            revision ? krmx::ExpectedRevision::exact(*revision) : krmx::ExpectedRevision::no_stream();
        revision = store->append("counter", expected, batch).last_revision;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_append));
    state.counters["bytes_per_event"] = Backend::bytes_per_event(*store);
}

// Eight threads (eight connections for PostgreSQL), one event per append, each to its own stream.
template <class Backend>
void append_concurrent(benchmark::State& state, bool synced) {
    constexpr std::size_t threads = 8;
    const std::size_t appends_per_thread = krmx_bench_size(synced ? 500 : 2'000, 50);
    Backend backend;
    auto store = backend.open(synced);
    std::uint64_t events = 0;
    std::vector<std::optional<krmx::Revision>> revisions(threads);
    for (auto _ : state) events += run_appenders(*store, revisions, appends_per_thread, 1);
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
}

// Replay of the whole store into an authoritative Stream, in batches (bounded memory).
template <class Backend>
void replay_store(benchmark::State& state) {
    const std::size_t count = krmx_bench_size(1'000'000, 10'000);
    Backend backend;
    auto store = backend.open(false);
    fill(*store, count);
    Backend::settle(*store);
    measure_replay(state, *store, count);
    state.counters["bytes_per_event"] = Backend::bytes_per_event(*store);
}

// A read model catching up over the whole store: decoding by the catalog, the reducer, no checkpoints.
struct Total {
    std::int64_t sum = 0;
    std::uint64_t count = 0;
};

template <class Backend>
void catch_up(benchmark::State& state) {
    const std::size_t count = krmx_bench_size(1'000'000, 10'000);
    Backend backend;
    auto store = backend.open(false);
    fill(*store, count);
    Backend::settle(*store);
    const auto catalog = krmx::EventCatalog{"counter", 1}.add(counter::increment);
    std::uint64_t events = 0;
    const PeakResidentMemory peak;
    for (auto _ : state) {
        auto model = krmx::ReadModel<Total>{"counter.total", 1, catalog}.reduce(
            [](Total& total, const krmx::CatalogEvent& event) {
                if (const int* n = event.payload_if(counter::increment)) {
                    total.sum += *n;
                    ++total.count;
                }
            });
        krmx::ReadModelRunner<Total, typename Backend::Store> runner{std::move(model), *store};
        const auto report = runner.catch_up();
        if (runner.state().count != count) throw std::runtime_error("catch-up: events missing");
        events += report.events;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(events));
    peak.report(state);
}

template <class Backend>
void register_store_pair() {
    const std::string store = Backend::name;
    for (const bool synced : {true, false}) {
        const std::string durability = durability_name(synced);
        benchmark::RegisterBenchmark(("BM_append_batched/" + store + "/" + durability).c_str(),
                                     [synced](benchmark::State& s) { append_batched<Backend>(s, synced); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        benchmark::RegisterBenchmark(
            ("BM_append_concurrent/" + store + "/" + durability + "/connections:8").c_str(),
            [synced](benchmark::State& s) { append_concurrent<Backend>(s, synced); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    benchmark::RegisterBenchmark(("BM_replay/" + store).c_str(), &replay_store<Backend>)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_catch_up/" + store).c_str(), &catch_up<Backend>)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

[[maybe_unused]] const bool registered = [] {
    register_store_pair<SqliteBackend>();
#if defined(KRMX_BENCH_POSTGRES)
    register_store_pair<PostgresBackend>();
#endif
    return true;
}();

#endif

}  // namespace

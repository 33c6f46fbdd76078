// Durable domains: confirmed events per second of a StreamDomain whose store is a synced SQLite file,
// paying one fsync per event (synchronous commits) against pipelined commits, side by side.
// Users keep a window of appends outstanding; an event counts when its `stream/append` is broadcast.
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/sync/stream_messages.hpp>
#if __has_include(<sqlite3.h>)
#include <krmx/store/sqlite_event_store.hpp>
#endif

#include "bench_common.hpp"
#include "claimable_counter/counter.hpp"
#include "mailbox.hpp"
#include "temp_dir.hpp"

namespace {

#if __has_include(<sqlite3.h>)

// The server side of a transport with no network: the benchmark delivers messages by hand and counts
// what the server sends back.
struct CountingTransport {
    krmx::detail::Signal<std::string_view> linked;
    krmx::detail::Signal<std::string_view> unlinked;
    krmx::detail::Signal<std::string_view, const krmx::Message&> message;
    std::uint64_t broadcasts = 0;  // confirmations

    krmx::Subscription on_link(krmx::UserCallback f) { return linked.connect(std::move(f)); }
    krmx::Subscription on_unlink(krmx::UserCallback f) { return unlinked.connect(std::move(f)); }
    krmx::Subscription on_message(krmx::UserMessageCallback f) { return message.connect(std::move(f)); }
    void deliver(std::string_view user, std::string_view text) {
        if (!reader.read(text).empty()) throw std::logic_error("not a message");
        message.emit(user, reader.message());
    }
    krmx::MessageReader reader;
    void send(std::string_view, std::string) {}  // histories on link; no invalidates are expected
    void broadcast(std::string) { ++broadcasts; }
};

// range(0): 0 = one fsync per event (synchronous commits), 1 = pipelined. Each iteration
// confirms `per_iteration` events from 4 users that keep `window` appends outstanding between them.
void BM_durable_server_sqlite_synced(benchmark::State& state) {
    const bool pipelined = state.range(0) == 1;
    const std::size_t per_iteration = pipelined ? krmx_bench_size(50'000, 2'000) : krmx_bench_size(1'000, 50);
    const std::uint64_t window = 1024;
    krmx::testing::TempDir dir;
    krmx::SqliteEventStore store{dir.path() / "events.sqlite",
                                 {.durability = krmx::SqliteDurability::synced}};
    krmx::testing::Mailbox loop;
    CountingTransport transport;
    krmx::DomainHost host{transport};
    krmx::StreamDomain server{
        host, "counter", counter::model(),
        {.durability = pipelined ? krmx::durable(store, {.post = loop.poster()})
                                 : krmx::durable(store, {.commits = krmx::Commits::synchronous})}};
    const std::vector<std::string> users{"alice", "bob", "carol", "dave"};
    std::vector<std::string> messages;
    for (const auto& user : users) {
        transport.linked.emit(user);
        messages.push_back(
            krmx::detail::client_append_message("counter", user, R"({"type":"increment","payload":1})", 1));
    }
    std::uint64_t sent = 0;
    for (auto _ : state) {
        const std::uint64_t target = transport.broadcasts + per_iteration;
        while (transport.broadcasts < target) {
            while (sent - transport.broadcasts < window && sent < target) {
                transport.deliver(users[sent % users.size()], messages[sent % users.size()]);
                ++sent;
            }
            if (pipelined) (void)loop.wait_and_run(std::chrono::milliseconds{50});
        }
    }
    if (server.statistics().refused() != 0) {
        state.SkipWithError("events were refused");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(transport.broadcasts));
    state.counters["confirmed_per_s"] =
        benchmark::Counter(static_cast<double>(transport.broadcasts), benchmark::Counter::kIsRate);
    const auto commits = server.statistics().commits;
    state.counters["events_per_commit"] =
        commits == 0 ? 0.0 : static_cast<double>(server.statistics().accepted) / static_cast<double>(commits);
}
BENCHMARK(BM_durable_server_sqlite_synced)
    ->ArgName("pipelined")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

#endif

}  // namespace

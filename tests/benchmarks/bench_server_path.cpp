// The whole server path of a `stream/append`, without sockets: the Krmx session reads the frame, the host
// routes it, the domain's stream validates and applies it, a memory store stores it (pipelined: a commit
// on a writer thread, completed on the loop; or inline: the commit runs in the call), and the broadcast is
// serialised once and handed to every linked connection. Four users keep a window of appends outstanding;
// an append counts when its broadcast reached the connections. Reported as ns per confirmed append.
// The same workload was measured on the code before the front-door redesign (issue 20) in one run.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <krmx/net/session.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "bench_common.hpp"
#include "counting_sink.hpp"
#include "claimable_counter/counter.hpp"
#include "mailbox.hpp"

namespace server_path_bench {

// What a metrics exporter costs the path without its own bookkeeping: two clock reads per append and one
// per commit, a virtual call each (krmx::net::Metrics adds a histogram bucket's atomic increments).
struct SummingObserver final : krmx::DomainObserver {
    krmx::Duration total{};
    std::uint64_t samples = 0;
    void append_confirmed(std::string_view, krmx::Duration elapsed) noexcept override {
        total += elapsed;
        ++samples;
    }
    void commit_ended(std::string_view, krmx::Duration elapsed, bool) noexcept override {
        total += elapsed;
        ++samples;
    }
};

// One server with its users linked, fresh for each round so that memory stays bounded.
struct Round {
    explicit Round(bool pipelined, bool observed)
        : server{host, "counter", counter::model(),
                 {.durability = pipelined ? krmx::durable(store, {.post = loop.poster()})
                                          : krmx::durable(store, {.commits = krmx::Commits::synchronous})}} {
        for (const char* user : {"alice", "bob", "carol", "dave"}) {
            connections.push_back(session.connect());
            session.receive(connections.back(),
                            R"({"type":"krmx/link","payload":{"username":")" + std::string{user} +
                                R"(","version":"0.5.4"}})");
        }
        if (observed) host.observe(&observer);
    }
    [[nodiscard]] std::uint64_t confirmed() const { return server.statistics().accepted; }

    SummingObserver observer;
    CountingSink sink;
    krmx::net::Session session{sink};
    krmx::MemoryEventStore store;
    krmx::testing::Mailbox loop;
    krmx::DomainHost host{session};
    krmx::StreamDomain<Counter> server;
    std::vector<krmx::net::ConnectionId> connections;
};

// range(0): 0 = the commit runs inline, 1 = pipelined (a writer thread, completions posted to the loop).
// range(1): 1 = latencies observed (as with krmx::net::Metrics), 0 = not (no clock read for them).
// Each iteration is one round of appends on a fresh server (set up and torn down outside the timing).
void BM_server_path(benchmark::State& state) {
    const bool pipelined = state.range(0) == 1;
    const bool observed = state.range(1) == 1;
    const std::uint64_t window = 1024;
    const std::uint64_t per_round = krmx_bench_size(16384, 256);
    const std::string append =
        R"({"type":"stream/append","payload":{"domain":"counter","event":{"type":"increment","payload":1},"id":7}})";
    std::uint64_t appended = 0;
    std::uint64_t refused = 0;
    std::uint64_t commits = 0;
    double seconds = 0;
    for (auto _ : state) {
        auto round = std::make_unique<Round>(pipelined, observed);
        const auto start = std::chrono::steady_clock::now();
        std::uint64_t sent = 0;
        while (round->confirmed() < per_round) {
            while (sent - round->confirmed() < window && sent < per_round) {
                round->session.receive(round->connections[sent % round->connections.size()], append);
                ++sent;
            }
            if (pipelined) (void)round->loop.wait_and_run(std::chrono::milliseconds{50});
        }
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        state.SetIterationTime(took.count());
        seconds += took.count();
        appended += round->confirmed();
        refused += round->server.statistics().refused();
        commits += round->server.statistics().commits;
    }
    if (refused != 0) state.SkipWithError("events were refused");
    state.SetItemsProcessed(static_cast<std::int64_t>(appended));
    state.counters["ns_per_append"] = seconds * 1e9 / static_cast<double>(std::max<std::uint64_t>(appended, 1));
    state.counters["events_per_commit"] =
        static_cast<double>(appended) / static_cast<double>(std::max<std::uint64_t>(commits, 1));
}
BENCHMARK(BM_server_path)
    ->ArgNames({"pipelined", "observed"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace server_path_bench

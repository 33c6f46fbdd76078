// What domains tell the host for monitoring (sync/domain_report.hpp): their reports, readiness after a failed
// commit and back, and the observer's latencies: one per user append confirmed and one per commit, none for
// server code's events, and nothing at all without an observer.
#include <string>
#include <string_view>
#include <vector>

#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>

#include "catch.hpp"
#include "pipeline_support.hpp"
#include "sync_support.hpp"

namespace domain_report_tests {
namespace {

struct RecordingObserver final : krmx::DomainObserver {
    std::vector<std::string> appends;
    std::vector<std::string> commits;
    void append_confirmed(std::string_view domain, krmx::Duration elapsed) noexcept override {
        if (elapsed >= krmx::Duration::zero()) appends.emplace_back(domain);
    }
    void commit_ended(std::string_view domain, krmx::Duration elapsed, bool stored) noexcept override {
        if (elapsed >= krmx::Duration::zero()) commits.push_back(std::string{domain} + (stored ? ":stored" : ":failed"));
    }
};

}  // namespace

TEST_CASE("the observer hears of confirmed user appends and commits, only while it observes", "[sync][report]") {
    krmx::MemoryEventStore base;
    krmx::testing::InstrumentedStore<krmx::MemoryEventStore> store{base};
    Table t{{.durability = krmx::durable(store, {.commits = krmx::Commits::synchronous})}};
    auto& alice = t.join("alice", 5ms);
    t.hub.run_until_idle();
    RecordingObserver observer;

    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(observer.appends.empty());

    t.host.observe(&observer);
    REQUIRE(alice.dispatch(counter::increment(1)));
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    REQUIRE(t.server.dispatch(krmx::server_dispatcher, counter::increment(1)));  // nobody waits for it
    CHECK(observer.appends == std::vector<std::string>{counter_domain, counter_domain});
    CHECK(observer.commits.size() == 3);

    store.fail_next("disk full");
    CHECK_FALSE(t.server.dispatch(krmx::server_dispatcher, counter::increment(1)));
    CHECK(observer.commits.back() == std::string{counter_domain} + ":failed");
    const auto not_ready = t.host.not_ready();
    REQUIRE(not_ready.size() == 1);
    CHECK(not_ready[0] == "domain \"" + std::string{counter_domain} + "\": last commit failed: disk full");

    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(t.host.not_ready().empty());
    CHECK(observer.appends.size() == 3);

    t.host.observe(nullptr);
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(observer.appends.size() == 3);
    CHECK(observer.commits.size() == 5);

    const auto reports = t.host.reports();
    REQUIRE(reports.size() == 1);
    const auto& r = reports[0];
    CHECK(r.name == counter_domain);
    CHECK(r.durable);
    CHECK(r.events == 6);
    CHECK(r.confirmed == 6);
    CHECK(r.uncommitted == 0);
    CHECK_FALSE(r.committing);
    CHECK(r.history_bytes > 0);
    CHECK(r.statistics.failed_commits == 1);
    CHECK_FALSE(r.not_ready);
    CHECK_FALSE(r.store);  // the instrumented wrapper keeps no statistics
}

TEST_CASE("an in-memory domain reports no store and is always ready", "[sync][report]") {
    Table t;
    auto& alice = t.join("alice", 5ms);
    RecordingObserver observer;
    t.host.observe(&observer);
    t.hub.run_until_idle();
    REQUIRE(alice.dispatch(counter::increment(4)));
    t.hub.run_until_idle();
    CHECK(observer.appends.size() == 1);
    CHECK(observer.commits.empty());
    const auto r = t.host.reports().at(0);
    CHECK_FALSE(r.durable);
    CHECK_FALSE(r.store);
    CHECK(r.events == 1);
    CHECK(t.host.not_ready().empty());
}

}  // namespace domain_report_tests

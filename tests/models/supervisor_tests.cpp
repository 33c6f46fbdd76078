// The supervisor: runs read models, restarts a failing one with backoff on an injected clock, reports.

#include <atomic>
#include <chrono>
#include <stdexcept>

#include "catch.hpp"
#include "krmx/core/clock.hpp"
#include "krmx/models/read_model_runner.hpp"
#include "krmx/models/supervisor.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "models_test_support.hpp"

using namespace bookstore;
using krmx::WorkerStatus;

TEST_CASE("the supervisor restarts a failing read model with a doubling backoff and reports it",
          "[models][supervisor]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    models_test::append_canonical_history(store);
    std::atomic<int> failures_left{2};
    auto flaky = krmx::ReadModel<Available>{"book.available.flaky", 1, catalog()}.reduce(
        [&](Available&, const krmx::CatalogEvent&) {
            if (failures_left.load() > 0) {
                --failures_left;
                throw std::runtime_error("database unavailable");
            }
        });
    krmx::ReadModelRunner<Available, krmx::MemoryEventStore> failing{flaky, store};
    failing.use_checkpoints(checkpoints);
    krmx::ReadModelRunner<Available, krmx::MemoryEventStore> healthy{available_model(), store};

    krmx::ManualClock clock;
    krmx::Supervisor supervisor{{.initial_backoff = std::chrono::seconds{1},
                                 .max_backoff = std::chrono::seconds{60},
                                 .clock = clock}};
    supervisor.add(failing);
    supervisor.add(healthy);
    supervisor.start();

    REQUIRE(
        models_test::eventually([&] { return healthy.position() == models_test::canonical_history_size; }));
    CHECK(supervisor.status(healthy.model().name()).status == WorkerStatus::running);

    const std::string name = failing.model().name();
    REQUIRE(
        models_test::eventually([&] { return supervisor.status(name).status == WorkerStatus::backing_off; }));
    auto report = supervisor.status(name);
    CHECK(report.failures == 1);
    CHECK(report.last_error == "database unavailable");
    CHECK(report.backoff == std::chrono::seconds{1});
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    CHECK(supervisor.status(name).starts == 1);  // the clock has not moved: no restart yet

    clock.advance(std::chrono::seconds{1});
    REQUIRE(models_test::eventually([&] { return supervisor.status(name).failures == 2; }));
    CHECK(supervisor.status(name).backoff == std::chrono::seconds{2});
    clock.advance(std::chrono::seconds{2});
    REQUIRE(
        models_test::eventually([&] { return failing.position() == models_test::canonical_history_size; }));
    report = supervisor.status(name);
    CHECK(report.status == WorkerStatus::running);
    CHECK(report.starts == 3);

    models_test::append(store, "2", book_lent(Lending{"2", "erin"}));
    REQUIRE(models_test::eventually(
        [&] { return healthy.position() == models_test::canonical_history_size + 1; }));
    supervisor.stop();
    for (const auto& r : supervisor.status()) CHECK(r.status == WorkerStatus::stopped);
}

// SqliteLockProvider between real processes: write models in four child processes lend from one book of a
// shared SQLite event store. With one lock file their decisions never overlap (an interval check over
// CLOCK_MONOTONIC proves it) and no append conflicts; with a lock file each they do overlap, so the check
// can fail. A lock whose holder was killed with SIGKILL is free again after its lease.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "krmx/models/sqlite_lock_provider.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "models_test_support.hpp"

using namespace bookstore;
using krmx::testing::ChildProcess;

namespace {

constexpr int workers = 4;
constexpr int rounds = 10;
constexpr int copies = 30;  // fewer than workers * rounds: the last lendings must be refused

struct Held {
    std::int64_t acquired_ns = 0;
    std::int64_t released_ns = 0;
    std::string outcome;
};

struct LendRun {
    std::vector<Held> holds;
    std::map<std::string, int> outcomes;  // appended, refused, conflict
    bool overlapped = false;
    Book book;  // as the store holds it after the run

    [[nodiscard]] int count(const std::string& outcome) const {
        const auto found = outcomes.find(outcome);
        return found == outcomes.end() ? 0 : found->second;
    }
};

// Starts the workers, lets them go at once, waits for all of them and collects what they report.
// `shared_lock`: one lock file for all, or one each.
LendRun run_lending_processes(const krmx::testing::TempDir& dir, bool shared_lock) {
    const auto store_file = dir.path() / "events.sqlite";
    {
        krmx::SqliteEventStore store{store_file};
        models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, copies}));
    }
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (int w = 0; w < workers; ++w) {
        const auto lock_file =
            dir.path() / (shared_lock ? "locks.sqlite" : "locks-" + std::to_string(w) + ".sqlite");
        children.push_back(std::make_unique<ChildProcess>(
            KRMX_LOCK_WORKER,
            std::vector<std::string>{"lend", store_file.string(), lock_file.string(),
                                     "user-" + std::to_string(w), std::to_string(rounds), "3"}));
    }
    for (auto& child : children) REQUIRE(child->wait_for_line("ready", std::chrono::seconds{60}));
    for (auto& child : children) REQUIRE(child->write("go\n"));

    LendRun run;
    for (auto& child : children) {
        REQUIRE(child->read_to_end(std::chrono::seconds{120}));
        INFO("worker output:\n" << child->output());
        REQUIRE(child->exited_cleanly());
        const auto lines = child->lines();
        REQUIRE(lines.size() == rounds + 2);  // ready, one per round, done
        CHECK(lines.back() == "done");
        for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
            std::istringstream fields{lines[i]};
            Held held;
            fields >> held.acquired_ns >> held.released_ns >> held.outcome;
            REQUIRE_FALSE(fields.fail());
            REQUIRE(held.acquired_ns <= held.released_ns);
            REQUIRE((held.outcome == "appended" || held.outcome == "refused" || held.outcome == "conflict"));
            ++run.outcomes[held.outcome];
            run.holds.push_back(held);
        }
    }
    std::sort(run.holds.begin(), run.holds.end(),
              [](const Held& a, const Held& b) { return a.acquired_ns < b.acquired_ns; });
    for (std::size_t i = 1; i < run.holds.size(); ++i)
        if (run.holds[i].acquired_ns < run.holds[i - 1].released_ns) run.overlapped = true;
    krmx::SqliteEventStore store{store_file};
    run.book = book_write_model("1").with_source(store).handle([](auto&) {}).state;
    return run;
}

}  // namespace

TEST_CASE("write models in four processes sharing a SQLite lock file never overlap",
          "[models][sqlite][lock][process]") {
    models_test::TempDir dir;
    const auto run = run_lending_processes(dir, true);
    CHECK_FALSE(run.overlapped);
    // Under the lock every decision saw the latest revision: no conflict, and exactly the copies there were.
    CHECK(run.count("conflict") == 0);
    CHECK(run.count("appended") == copies);
    CHECK(run.count("refused") == workers * rounds - copies);
    CHECK(run.book.lent == copies);
    CHECK(run.book.available() == 0);
}

TEST_CASE("write models in four processes with a lock file each do overlap (the detector works)",
          "[models][sqlite][lock][process]") {
    models_test::TempDir dir;
    const auto run = run_lending_processes(dir, false);
    CHECK(run.overlapped);
    // Without the lock, the expected revision still keeps a copy from being lent out twice.
    CHECK(run.count("appended") == run.book.lent);
    CHECK(run.book.available() >= 0);
}

TEST_CASE("a SQLite lock held by a process killed with SIGKILL is free after its lease",
          "[models][sqlite][lock][process]") {
    models_test::TempDir dir;
    const auto lock_file = dir.path() / "locks.sqlite";
    constexpr auto lease = std::chrono::milliseconds{1500};
    ChildProcess holder{KRMX_LOCK_WORKER, {"hold", lock_file.string(), std::to_string(lease.count())}};
    REQUIRE(holder.wait_for_line("held", std::chrono::seconds{60}));
    const auto held_at = std::chrono::steady_clock::now();

    krmx::SqliteLockProvider locks{lock_file};
    std::atomic<bool> taken{false};
    std::jthread waiter{[&] {
        auto lock = locks.acquire(stream_of("1"));
        taken = true;
    }};
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    CHECK_FALSE(taken.load());  // the other process holds it
    const int status = holder.kill_and_wait();
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    waiter.join();
    CHECK(taken.load());
    // The dead holder's row counted until its lease ended (taken a moment before "held" arrived).
    CHECK(std::chrono::steady_clock::now() - held_at >= lease - std::chrono::milliseconds{500});
}

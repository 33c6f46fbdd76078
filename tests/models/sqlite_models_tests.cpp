// The SQLite parts of the models: the database as a projection target (rows and checkpoint in one
// transaction) and what only SQLite locks do (leases); lock_provider_tests.cpp holds what every provider
// does.

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "krmx/models/read_model_runner.hpp"
#include "krmx/models/sqlite_lock_provider.hpp"
#include "krmx/models/sqlite_projection.hpp"
#include "krmx/store/sqlite_checkpoint_store.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "models_test_support.hpp"

using namespace bookstore;

TEST_CASE("a SQLite projection commits its rows with the checkpoint, so a failure never leaves them apart",
          "[models][sqlite][projection]") {
    models_test::TempDir dir;
    krmx::SqliteEventStore store{dir.path() / "events.sqlite"};
    models_test::append_canonical_history(store);
    std::atomic<int> fail_at{6};
    {
        krmx::SqliteProjection db{dir.path() / "projection.sqlite"};
        db.execute(
            "CREATE TABLE IF NOT EXISTS available (book_id TEXT PRIMARY KEY, copies INTEGER NOT NULL)");
        krmx::ReadModelRunner<krmx::NoState, krmx::SqliteEventStore> runner{
            models_test::available_table(db, "?", &fail_at), store};
        runner.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(4));
        CHECK_THROWS_WITH(runner.catch_up(), "crash");
        // Committed: events 1-4 and their checkpoint; event 5's rows are rolled back with the failure.
        CHECK(db.load("book.available_table")->position == 4);
        CHECK(models_test::available_rows(db) ==
              std::vector<krmx::SqlRow>{{std::string{"1"}, std::int64_t{9}},
                                        {std::string{"2"}, std::int64_t{5}}});
        CHECK(db.query("SELECT count(*) FROM available WHERE book_id = '3'")[0][0] ==
              krmx::SqlValue{std::int64_t{0}});
    }
    fail_at = -1;
    krmx::SqliteProjection db{dir.path() / "projection.sqlite"};
    krmx::ReadModelRunner<krmx::NoState, krmx::SqliteEventStore> restarted{
        models_test::available_table(db, "?"), store};
    restarted.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(4));
    const auto report = restarted.catch_up();
    CHECK(report.restored);
    CHECK(report.events == 4);
    CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
    // The checkpoint row is the one SqliteCheckpointStore reads.
    krmx::SqliteCheckpointStore checkpoints{dir.path() / "projection.sqlite"};
    CHECK(checkpoints.load("book.available_table")->position == models_test::canonical_history_size);
}

TEST_CASE("a checkpointed read model on SQLite resumes after a restart", "[models][sqlite][checkpoint]") {
    models_test::TempDir dir;
    {
        krmx::SqliteEventStore store{dir.path() / "events.sqlite"};
        models_test::append_canonical_history(store);
        krmx::SqliteCheckpointStore checkpoints{dir.path() / "checkpoints.sqlite"};
        krmx::ReadModelRunner<Available, krmx::SqliteEventStore> runner{available_model(), store};
        runner.use_checkpoints(checkpoints);
        CHECK(runner.catch_up().events == 7);
    }
    krmx::SqliteEventStore store{dir.path() / "events.sqlite"};
    models_test::append(store, "2", book_lent(Lending{"2", "frank"}));
    krmx::SqliteCheckpointStore checkpoints{dir.path() / "checkpoints.sqlite"};
    krmx::ReadModelRunner<Available, krmx::SqliteEventStore> runner{available_model(), store};
    runner.use_checkpoints(checkpoints);
    const auto report = runner.catch_up();
    CHECK(report.restored);
    CHECK(report.events == 1);
    CHECK(runner.state() == Available{{{"1", 9}, {"2", 4}}});
}

TEST_CASE("a SQLite lock whose holder vanished is taken over after its lease", "[models][sqlite][lock]") {
    models_test::TempDir dir;
    krmx::SqliteLockProvider crashed{dir.path() / "locks.sqlite", {.lease = std::chrono::milliseconds{50}}};
    krmx::SqliteLockProvider other{dir.path() / "locks.sqlite", {.lease = std::chrono::milliseconds{50}}};
    auto held = crashed.acquire("book-1");
    const auto start = std::chrono::steady_clock::now();
    auto taken = other.acquire("book-1");  // the holder never releases: the lease ends
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds{40});
    CHECK(taken.held());
    held.release();  // the late release does not free the new holder's lock
    std::atomic<bool> got{false};
    std::jthread waiter{[&] {
        auto lock = crashed.acquire("book-1");
        got = true;
    }};
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    CHECK_FALSE(got.load());
    taken.release();
    waiter.join();
    CHECK(got.load());
}

TEST_CASE(
    "a revision bump of a SQLite projection resets its rows in the transaction that resets its checkpoint",
    "[models][sqlite][projection]") {
    models_test::TempDir dir;
    krmx::SqliteEventStore store{dir.path() / "events.sqlite"};
    models_test::append_canonical_history(store);
    krmx::SqliteProjection db{dir.path() / "projection.sqlite"};
    db.execute("CREATE TABLE IF NOT EXISTS available (book_id TEXT PRIMARY KEY, copies INTEGER NOT NULL)");
    using Runner = krmx::ReadModelRunner<krmx::NoState, krmx::SqliteEventStore>;
    const auto model = [&](std::uint32_t revision, bool reset_fails = false) {
        return models_test::available_table(db, "?", nullptr, revision).on_reset([&db, reset_fails] {
            db.execute("DELETE FROM available");
            if (reset_fails) throw std::runtime_error("reset failed");
        });
    };
    {
        Runner v1{model(1), store};
        v1.use_checkpoints(db);
        (void)v1.catch_up();
        CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
    }
    {
        // The plain INSERTs of the projection would hit the rows of revision 1 without the reset.
        Runner v2{model(2), store};
        v2.use_checkpoints(db);
        const auto report = v2.catch_up();
        CHECK(report.discarded_checkpoint);
        CHECK(report.events == models_test::canonical_history_size);
        CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
        CHECK(db.load("book.available_table")->version == "book.available_table@2/bookstore@1");
    }
    // A reset that fails half-way leaves rows and checkpoint as they were: they are one transaction.
    Runner v3{model(3, true), store};
    v3.use_checkpoints(db);
    CHECK_THROWS_WITH(v3.catch_up(), "reset failed");
    CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
    CHECK(db.load("book.available_table")->version == "book.available_table@2/bookstore@1");
    CHECK(db.load("book.available_table")->position == models_test::canonical_history_size);
}

TEST_CASE("a SQLite lock whose release fails is counted by its provider, and ends with its lease",
          "[models][sqlite][lock]") {
    models_test::TempDir dir;
    const auto file = dir.path() / "locks.sqlite";
    krmx::SqliteLockProvider locks{file};
    auto lock = locks.acquire("book-1");
    CHECK(locks.failed_releases() == 0);
    // Someone removes the lock table behind the provider's back: the release cannot delete its row.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other, "DROP TABLE krmx_locks", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    lock.release();
    CHECK_FALSE(lock.held());
    CHECK(locks.failed_releases() == 1);
}

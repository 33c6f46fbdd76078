// The PostgreSQL parts of the models: a schema as a projection target (rows and checkpoint in one
// transaction), checkpoints, and what only PostgreSQL locks do: a dead holder frees them, and names are
// numbered in a table (lock_provider_tests.cpp holds what every provider does).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>

#include "catch.hpp"
#include "child_process.hpp"
#include "krmx/models/postgres_lock_provider.hpp"
#include "krmx/models/postgres_projection.hpp"
#include "krmx/models/read_model_runner.hpp"
#include "krmx/store/names.hpp"
#include "krmx/store/postgres_checkpoint_store.hpp"
#include "krmx/store/postgres_event_store.hpp"
#include "models_test_support.hpp"
#include "postgres_server.hpp"

using namespace bookstore;
using krmx::testing::shared_postgres;
using krmx::testing::unique_postgres_schema;

namespace {

krmx::PostgresOptions database(const std::string& schema) {
    return {.connection = shared_postgres().conninfo(), .schema = schema};
}

}  // namespace

TEST_CASE(
    "a PostgreSQL projection commits its rows with the checkpoint, so a failure never leaves them apart",
    "[models][postgres][projection]") {
    const auto events = database(unique_postgres_schema("events"));
    const auto views = database(unique_postgres_schema("views"));
    krmx::PostgresEventStore store{events};
    models_test::append_canonical_history(store);
    std::atomic<int> fail_at{6};
    {
        krmx::PostgresProjection db{views};
        db.execute("CREATE TABLE IF NOT EXISTS available (book_id text PRIMARY KEY, copies bigint NOT NULL)");
        krmx::ReadModelRunner<krmx::NoState, krmx::PostgresEventStore> runner{
            models_test::available_table(db, "$", &fail_at), store};
        runner.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(4));
        CHECK_THROWS_WITH(runner.catch_up(), "crash");
        // Committed: events 1-4 and their checkpoint; event 5's rows are rolled back with the failure.
        CHECK(db.load("book.available_table")->position == 4);
        CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
        CHECK(db.query("SELECT count(*) FROM available WHERE book_id = '3'")[0][0] ==
              krmx::SqlValue{std::int64_t{0}});
    }
    fail_at = -1;
    krmx::PostgresProjection db{views};
    krmx::ReadModelRunner<krmx::NoState, krmx::PostgresEventStore> restarted{
        models_test::available_table(db, "$"), store};
    restarted.use_checkpoints(db, krmx::CheckpointStrategy::every_n_events(4));
    const auto report = restarted.catch_up();
    CHECK(report.restored);
    CHECK(report.events == 4);
    CHECK(models_test::available_rows(db) == models_test::canonical_available_rows);
    // The checkpoint row is the one PostgresCheckpointStore reads.
    krmx::PostgresCheckpointStore checkpoints{views};
    CHECK(checkpoints.load("book.available_table")->position == models_test::canonical_history_size);
}

TEST_CASE("a projection's query reads PostgreSQL types as SQL values", "[models][postgres][projection]") {
    krmx::PostgresProjection db{database(unique_postgres_schema("types"))};
    const auto row =
        db.query("SELECT 1::bigint, 2::int, true, 2.5::float8, 'x'::text, NULL::text, $1::float8", {0.1})[0];
    CHECK(row == krmx::SqlRow{std::int64_t{1}, std::int64_t{2}, std::int64_t{1}, 2.5, std::string{"x"},
                              nullptr, 0.1});
}

TEST_CASE("a checkpointed read model on PostgreSQL resumes after a restart",
          "[models][postgres][checkpoint]") {
    const auto events = database(unique_postgres_schema("events"));
    {
        krmx::PostgresEventStore store{events};
        models_test::append_canonical_history(store);
        krmx::PostgresCheckpointStore checkpoints{events};  // the same schema as the events: fine
        krmx::ReadModelRunner<Available, krmx::PostgresEventStore> runner{available_model(), store};
        runner.use_checkpoints(checkpoints);
        CHECK(runner.catch_up().events == 7);
    }
    krmx::PostgresEventStore store{events};
    models_test::append(store, "2", book_lent(Lending{"2", "frank"}));
    krmx::PostgresCheckpointStore checkpoints{events};
    krmx::ReadModelRunner<Available, krmx::PostgresEventStore> runner{available_model(), store};
    runner.use_checkpoints(checkpoints);
    const auto report = runner.catch_up();
    CHECK(report.restored);
    CHECK(report.events == 1);
    CHECK(runner.state() == Available{{{"1", 9}, {"2", 4}}});
}

TEST_CASE("a PostgreSQL lock held by a process killed with SIGKILL is free at once",
          "[models][postgres][lock]") {
    const auto schema = unique_postgres_schema("locks");
    krmx::PostgresLockProvider locks{database(schema)};
    krmx::testing::ChildProcess holder{KRMX_POSTGRES_LOCK_HOLDER,
                                       {shared_postgres().conninfo(), schema, "book-1"}};
    REQUIRE(holder.wait_for_line("held", std::chrono::seconds{30}));
    std::atomic<bool> acquired{false};
    std::thread waiter([&] {
        const auto lock = locks.acquire("book-1");
        acquired = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
    CHECK_FALSE(acquired);  // the holder is alive: the lock is taken
    holder.kill_and_wait();
    // No lease to run out: the server frees the dead session's lock as soon as it notices the session end.
    CHECK(models_test::eventually([&] { return acquired.load(); }, std::chrono::seconds{10}));
    waiter.join();
}

namespace {

// The identity sequence that numbers the lock names of `schema`.
std::string lock_sequence(const std::string& schema) {
    return "pg_get_serial_sequence('\"" + schema + "\".krmx_locks', 'id')";
}

std::int64_t lock_numbers_given(krmx::PostgresProjection& sql, const std::string& schema) {
    const auto value = sql.query("SELECT coalesce(pg_sequence_last_value(" + lock_sequence(schema) +
                                 "::regclass), 0)")[0][0];
    return std::get<std::int64_t>(value);
}

}  // namespace

TEST_CASE("locking a known name uses no lock number, and names numbered past 2^31 lock and exclude",
          "[models][postgres][lock]") {
    const auto schema = unique_postgres_schema("locks");
    krmx::PostgresLockProvider locks{database(schema)};
    krmx::PostgresLockProvider other{database(schema)};
    krmx::PostgresProjection sql{database(schema)};
    locks.acquire("old").release();
    const auto given = lock_numbers_given(sql, schema);
    for (int i = 0; i < 3; ++i) {
        locks.acquire("old").release();
        REQUIRE(locks.try_acquire("old").has_value());
    }
    CHECK(lock_numbers_given(sql, schema) == given);

    // The next names get 2^31 and 2^31 + 1: past what an int4 holds.
    (void)sql.query("SELECT setval(" + lock_sequence(schema) + ", 2147483647)");
    auto first = locks.try_acquire("new");
    REQUIRE(first.has_value());
    const auto second = locks.acquire("newer");
    const auto old = locks.acquire("old");
    CHECK((first->held() && second.held() && old.held()));
    CHECK_FALSE(other.try_acquire("new").has_value());
    CHECK_FALSE(other.try_acquire("newer").has_value());
    CHECK_FALSE(other.try_acquire("old").has_value());
    first->release();
    CHECK(other.try_acquire("new").has_value());
    CHECK(lock_numbers_given(sql, schema) == 2147483649);

    // 2^32 is the last number a name can have; a name numbered past it is refused, not confused with another.
    (void)sql.query("SELECT setval(" + lock_sequence(schema) + ", 4294967295)");
    const auto last = locks.acquire("last");
    CHECK_FALSE(other.try_acquire("last").has_value());
    CHECK(other.try_acquire("new").has_value());
    CHECK_THROWS_AS(locks.acquire("one too many"), krmx::StoreError);
    CHECK_THROWS_WITH(locks.try_acquire("one too many"), Catch::Matchers::Contains("lock numbers"));
}

TEST_CASE("a PostgreSQL lock whose session ended before its release is counted as a failed release",
          "[models][postgres][lock]") {
    const auto schema = unique_postgres_schema("locks");
    krmx::PostgresLockProvider locks{database(schema)};
    krmx::PostgresProjection sql{database(schema)};
    const auto end_lock_sessions = [&] {
        (void)sql.query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> "
            "pg_backend_pid()");
    };
    auto lock = locks.acquire("book-1");
    end_lock_sessions();  // the server freed the lock; the holder has not been told
    lock.release();
    CHECK(locks.failed_releases() == 1);
    // The name locks again, on a new connection.
    auto again = locks.try_acquire("book-1");
    REQUIRE(again.has_value());
    again->release();
    CHECK(locks.failed_releases() == 1);  // a good release is no failure
}

TEST_CASE("a lock name that breaks the name rule registers nothing in PostgreSQL",
          "[models][postgres][lock]") {
    const auto schema = unique_postgres_schema("locks");
    krmx::PostgresLockProvider locks{database(schema)};
    krmx::PostgresProjection sql{database(schema)};
    CHECK_THROWS_AS(locks.acquire(std::string(krmx::max_name_bytes + 1, 'x')), std::invalid_argument);
    CHECK_THROWS_AS(locks.try_acquire("\xff"), std::invalid_argument);
    CHECK(sql.query("SELECT count(*) FROM krmx_locks")[0][0] == krmx::SqlValue{std::int64_t{0}});
    CHECK(lock_numbers_given(sql, schema) == 0);
}

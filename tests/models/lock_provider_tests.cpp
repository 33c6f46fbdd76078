// What every lock provider does, written once and run against each (LockProviderFixtures): write models
// that share locks never overlap on a book, and a lock name that breaks the name rule is refused.

#include <atomic>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>

#include "catch.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "models_test_support.hpp"
#if defined(KRMX_TEST_SQLITE)
#include "krmx/models/sqlite_lock_provider.hpp"
#endif
#if defined(KRMX_TEST_POSTGRES)
#include "krmx/models/postgres_lock_provider.hpp"
#include "postgres_server.hpp"
#endif

using namespace bookstore;

namespace {

// Each fixture gives two providers that share their locks: for threads of one process that is one provider.
struct InProcessLocks {
    krmx::InProcessLockProvider provider;
    krmx::InProcessLockProvider& first() { return provider; }
    krmx::InProcessLockProvider& second() { return provider; }
};

#if defined(KRMX_TEST_SQLITE)
struct SqliteLocks {
    models_test::TempDir dir;
    krmx::SqliteLockProvider a{dir.path() / "locks.sqlite"};
    krmx::SqliteLockProvider b{dir.path() / "locks.sqlite"};
    krmx::SqliteLockProvider& first() { return a; }
    krmx::SqliteLockProvider& second() { return b; }
};
using SqliteLockFixtures = std::tuple<SqliteLocks>;
#else
using SqliteLockFixtures = std::tuple<>;
#endif

#if defined(KRMX_TEST_POSTGRES)
struct PostgresLocks {
    krmx::PostgresOptions database{.connection = krmx::testing::shared_postgres().conninfo(),
                                   .schema = krmx::testing::unique_postgres_schema("locks")};
    krmx::PostgresLockProvider a{database};
    krmx::PostgresLockProvider b{database};
    krmx::PostgresLockProvider& first() { return a; }
    krmx::PostgresLockProvider& second() { return b; }
};
using PostgresLockFixtures = std::tuple<PostgresLocks>;
#else
using PostgresLockFixtures = std::tuple<>;
#endif

using LockProviderFixtures =
    decltype(std::tuple_cat(std::tuple<InProcessLocks>{}, SqliteLockFixtures{}, PostgresLockFixtures{}));

}  // namespace

TEMPLATE_LIST_TEST_CASE("write models sharing locks never overlap on a book", "[models][lock]",
                        LockProviderFixtures) {
    TestType locks;
    krmx::MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 100}));
    const auto run = models_test::run_concurrent_lends(store, {locks.first(), locks.second()});
    CHECK_FALSE(run.overlapped);
    CHECK(run.appended == 20);
    CHECK(run.conflicts == 0);
    // Other names are independent of a held one.
    const auto held = locks.first().acquire("book-a");
    const auto other = locks.second().acquire("book-b");
    CHECK(other.held());
}

TEST_CASE("a lock whose release throws is counted in the counter its provider gave it", "[models][lock]") {
    std::atomic<std::uint64_t> failed{0};
    {
        krmx::Lock lock{[] { throw std::runtime_error("storage gone"); }, &failed};
        CHECK(lock.held());
    }
    CHECK(failed == 1);
    krmx::Lock released{[] {}, &failed};
    released.release();
    released.release();  // a second release does nothing
    CHECK(failed == 1);
}

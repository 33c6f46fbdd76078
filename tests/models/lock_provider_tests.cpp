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
#include "krmx/store/names.hpp"
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

// `size` bytes of printable ASCII that do not compress (PostgreSQL would store a repetitive one compressed).
std::string incompressible_name(std::size_t size) {
    std::mt19937 random{static_cast<std::uint32_t>(size)};
    std::uniform_int_distribution<int> printable{'!', '~'};
    std::string name(size, ' ');
    for (char& c : name) c = static_cast<char>(printable(random));
    return name;
}

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

TEMPLATE_LIST_TEST_CASE("a lock name that breaks the name rule is refused with the rule's reason",
                        "[models][lock]", LockProviderFixtures) {
    TestType locks;
    auto& provider = locks.first();
    for (const std::string& name :
         {std::string{}, std::string(krmx::max_name_bytes + 1, 'x'), incompressible_name(3000),
          std::string{"book\0-1", 7}, std::string{"book-\xff"}, std::string{"\xc3"}}) {
        INFO(krmx::detail::quoted(name.substr(0, 80)));
        const auto problem = krmx::detail::name_problem("lock name", name);
        REQUIRE(problem.has_value());
        CHECK_THROWS_MATCHES(provider.acquire(name), std::invalid_argument, Catch::Message(*problem));
        if constexpr (requires { provider.try_acquire(name); }) {
            CHECK_THROWS_MATCHES(provider.try_acquire(name), std::invalid_argument, Catch::Message(*problem));
        }
    }
    // Names up to the limit, in any script, are locks like any other.
    for (const std::string& name :
         {incompressible_name(krmx::max_name_bytes), std::string{"bücher/übersicht ✓"}}) {
        auto lock = provider.acquire(name);
        CHECK(lock.held());
        lock.release();
        CHECK(locks.second().acquire(name).held());
    }
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

// What every lock provider does: the lock provider contract (krmx/testing/lock_provider_contract.hpp, the
// suite users run on their own providers) run on each of ours (LockProviderFixtures), and how a Lock counts
// a release that failed.

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <tuple>

#include "catch.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/testing/lock_provider_contract.hpp"
#include "models_test_support.hpp"
#if defined(KRMX_TEST_SQLITE)
#include "krmx/models/sqlite_lock_provider.hpp"
#endif
#if defined(KRMX_TEST_POSTGRES)
#include "krmx/models/postgres_lock_provider.hpp"
#include "postgres_server.hpp"
#endif

namespace {

// Each fixture gives two providers that share their locks: for threads of one process that is one provider.
struct InProcessLocks {
    static constexpr const char* name = "in process";
    krmx::InProcessLockProvider provider;
    krmx::InProcessLockProvider& first() { return provider; }
    krmx::InProcessLockProvider& second() { return provider; }
};

#if defined(KRMX_TEST_SQLITE)
struct SqliteLocks {
    static constexpr const char* name = "sqlite";
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
    static constexpr const char* name = "postgres";
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

TEMPLATE_LIST_TEST_CASE("the provider keeps the lock provider contract", "[models][lock]",
                        LockProviderFixtures) {
    STATIC_REQUIRE(krmx::testing::LockProviderFixture<TestType>);
    const auto report = krmx::testing::lock_provider_contract<TestType>();
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.failed_cases().empty());
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

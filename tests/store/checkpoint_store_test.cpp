// The checkpoint store contract (krmx/testing/checkpoint_store_contract.hpp, the suite users run on their own
// stores), run on every checkpoint store of ours, and what only SQLite's does with a damaged checkpoint.

#include <filesystem>
#include <string>
#include <type_traits>

#include "catch.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/testing/checkpoint_store_contract.hpp"
#include "store_test_support.hpp"

using krmx::testing::CheckpointStoreFixtures;

TEMPLATE_LIST_TEST_CASE("the store keeps the checkpoint store contract", "[store][checkpoint]",
                        CheckpointStoreFixtures) {
    STATIC_REQUIRE(krmx::testing::CheckpointStoreFixture<TestType>);
    const auto report = krmx::testing::checkpoint_store_contract<TestType>();
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.failed_cases().empty());
    // Only the memory store keeps JSON values as they are; the others refuse what JSON text cannot hold.
    CHECK(report.skipped_case("a checkpoint whose state cannot be stored is refused and the old one kept") ==
          std::is_same_v<TestType, krmx::testing::MemoryCheckpoints>);
}

#if defined(KRMX_TEST_SQLITE)
namespace {
void corrupt(const std::filesystem::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
}
}  // namespace

TEST_CASE("a damaged checkpoint is reported, never served", "[store][checkpoint][sqlite]") {
    krmx::testing::SqliteCheckpoints fixture;
    fixture.open().save("k", {.state = {{"n", 5}}, .position = 77, .version = "v"});
    fixture.close();
    corrupt(fixture.path(), "UPDATE krmx_checkpoints SET position = 78");
    auto& store = fixture.open();
    CHECK_THROWS_AS(store.load("k"), krmx::CorruptRecord);
    CHECK_THROWS_WITH(store.load("k"),
                      Catch::Matchers::Contains(R"(the checkpoint "k" failed its checksum)"));
    // Saving over it repairs it.
    store.save("k", {.state = {{"n", 6}}, .position = 80, .version = "v"});
    CHECK(store.load("k")->position == 80);
}
#endif

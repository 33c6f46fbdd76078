// Checkpoint storage, the same contract for every checkpoint store.

#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/names.hpp"
#include "store_test_support.hpp"

using krmx::Checkpoint;
using nlohmann::json;

using krmx::testing::CheckpointStoreFixtures;

TEMPLATE_LIST_TEST_CASE("a saved checkpoint loads back with its state, position and version",
                        "[store][checkpoint]", CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    CHECK_FALSE(store.load("counter").has_value());
    const Checkpoint saved{
        .state = {{"counter", 42}, {"claim", "alice"}}, .position = 1234, .version = "model:3"};
    store.save("counter", saved);
    CHECK(store.load("counter") == saved);
    CHECK_FALSE(store.load("other").has_value());
}

TEMPLATE_LIST_TEST_CASE("saving a checkpoint again replaces it", "[store][checkpoint]",
                        CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    store.save("counter", {.state = {{"counter", 1}}, .position = 1, .version = "v1"});
    store.save("counter", {.state = {{"counter", 9}}, .position = 9, .version = "v2"});
    const auto loaded = store.load("counter");
    REQUIRE(loaded.has_value());
    CHECK(loaded->state == json{{"counter", 9}});
    CHECK(loaded->position == 9);
    CHECK(loaded->version == "v2");
}

TEMPLATE_LIST_TEST_CASE("an erased checkpoint is gone", "[store][checkpoint]", CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    store.save("a", {.state = json::array(), .position = 3, .version = "v"});
    store.save("b", {.state = nullptr, .position = 4, .version = "v"});
    CHECK(store.erase("a"));
    CHECK_FALSE(store.erase("a"));
    CHECK_FALSE(store.load("a").has_value());
    CHECK(store.load("b").has_value());
}

TEMPLATE_LIST_TEST_CASE("a checkpoint whose state cannot be stored is refused and the old one kept",
                        "[store][checkpoint]", CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    store.save("a", {.state = {{"ok", true}}, .position = 1, .version = "v"});
    if constexpr (std::is_same_v<TestType, krmx::testing::MemoryCheckpoints>) {
        SUCCEED("the memory store keeps JSON as it is");
    } else {
        CHECK_THROWS_AS(
            store.save("a", {.state = {{"bad", std::string{"\xff"}}}, .position = 2, .version = "v"}),
            krmx::InvalidAppend);
        // NaN would come back as null; a state nested deeper than a serializer's stack holds crashed it.
        CHECK_THROWS_WITH(store.save("a", {.state = {{"nan", std::nan("")}}, .position = 2, .version = "v"}),
                          Catch::Matchers::Contains("checkpoint state holds a number that is not finite"));
        json deep = json::array();
        json* at = &deep;
        for (int level = 1; level < 100'000; ++level) at = &at->emplace_back(json::array());
        const Checkpoint too_deep{.state = std::move(deep), .position = 2, .version = "v"};
        CHECK_THROWS_WITH(store.save("a", too_deep),
                          Catch::Matchers::Contains("checkpoint state nests deeper than 128 levels"));
        CHECK(store.load("a")->position == 1);
    }
}

TEMPLATE_LIST_TEST_CASE("checkpoint keys keep the name rule: at most 1024 bytes of UTF-8 without NUL",
                        "[store][checkpoint][names]", CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    const Checkpoint saved{.state = {{"n", 1}}, .position = 7, .version = "v1"};
    const std::string longest = krmx::testing::random_name(krmx::max_name_bytes, 1);
    store.save(longest, saved);
    CHECK(store.load(longest) == saved);
    const std::vector<std::pair<std::string, std::string>> bad{
        {krmx::testing::random_name(krmx::max_name_bytes + 1, 2), "is 1025 bytes long"},
        {krmx::testing::random_name(3000, 3), "is 3000 bytes long"},
        {std::string{"a\0b", 3}, R"(key "a\u0000b" holds a NUL)"},
        {"caf\xc3", R"(key "caf\xc3" is not valid UTF-8)"},
    };
    for (const auto& [key, says] : bad) {
        CAPTURE(says);
        try {
            store.save(key, saved);
            FAIL("a checkpoint was saved under a key no store can hold");
        } catch (const krmx::StoreError& e) {
            CHECK_THAT(e.what(), Catch::Matchers::Contains(says));
        }
        // It cannot be there, so it is not found.
        CHECK_FALSE(store.load(key).has_value());
        CHECK_FALSE(store.erase(key));
    }
    CHECK(store.erase(longest));
}

TEMPLATE_LIST_TEST_CASE("checkpoints survive a restart", "[store][checkpoint]", CheckpointStoreFixtures) {
    TestType fixture;
    fixture.open().save("k", {.state = {{"n", 5}}, .position = 77, .version = "v"});
    fixture.reopen();
    CHECK(fixture.open().load("k") == Checkpoint{.state = {{"n", 5}}, .position = 77, .version = "v"});
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

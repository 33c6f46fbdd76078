// Snapshots in a checkpoint store (krmx/store/snapshot.hpp), on every checkpoint store of ours: two slots
// written in turn, the newest usable one first, and every unusable one skipped and counted.

#include <string>

#include "catch.hpp"
#include "krmx/store/snapshot.hpp"
#include "store_test_support.hpp"

using krmx::testing::CheckpointStoreFixtures;

TEMPLATE_LIST_TEST_CASE("snapshots alternate between two slots, newest first", "[store][snapshot]",
                        CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    krmx::SnapshotStatistics statistics;
    CHECK(krmx::load_snapshots(store, "room-1", 1, statistics).empty());

    krmx::save_snapshot(store, "room-1", 1, {.position = 10, .state = {{"n", 10}}, .last_event_id = "e9"});
    krmx::save_snapshot(store, "room-1", 1, {.position = 20, .state = {{"n", 20}}, .last_event_id = "e19"});
    auto found = krmx::load_snapshots(store, "room-1", 1, statistics);
    REQUIRE(found.size() == 2);
    CHECK(found[0].position == 20);
    CHECK(found[0].state == nlohmann::json{{"n", 20}});
    CHECK(found[0].last_event_id == "e19");
    CHECK(found[1].position == 10);

    // The third save replaces the older one: the newest stays while it is written.
    krmx::save_snapshot(store, "room-1", 1, {.position = 30, .state = {{"n", 30}}, .last_event_id = "e29"});
    fixture.reopen();
    found = krmx::load_snapshots(fixture.open(), "room-1", 1, statistics);
    REQUIRE(found.size() == 2);
    CHECK(found[0].position == 30);
    CHECK(found[1].position == 20);
    CHECK(statistics.skipped() == 0);

    // Another stream's snapshots are its own, whatever its name holds.
    CHECK(krmx::load_snapshots(fixture.open(), "room-1|a", 1, statistics).empty());
    CHECK(krmx::load_snapshots(fixture.open(), "room-", 1, statistics).empty());
}

TEMPLATE_LIST_TEST_CASE("a snapshot of another model revision is skipped, counted, and overwritten first",
                        "[store][snapshot]", CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    krmx::save_snapshot(store, "s", 1, {.position = 5, .state = 5, .last_event_id = "e4"});
    krmx::SnapshotStatistics statistics;
    CHECK(krmx::load_snapshots(store, "s", 2, statistics).empty());
    CHECK(statistics.other_revision == 1);
    // Revision 2 writes its two snapshots over both slots in turn.
    krmx::save_snapshot(store, "s", 2, {.position = 6, .state = 6, .last_event_id = "e5"});
    krmx::save_snapshot(store, "s", 2, {.position = 7, .state = 7, .last_event_id = "e6"});
    statistics = {};
    const auto found = krmx::load_snapshots(store, "s", 2, statistics);
    REQUIRE(found.size() == 2);
    CHECK(found[0].position == 7);
    CHECK(found[1].position == 6);
    CHECK(statistics.skipped() == 0);
    CHECK(krmx::load_snapshots(store, "s", 1, statistics).empty());
    CHECK(statistics.other_revision == 2);
}

TEMPLATE_LIST_TEST_CASE("an incomplete snapshot record is skipped as damaged", "[store][snapshot]",
                        CheckpointStoreFixtures) {
    TestType fixture;
    auto& store = fixture.open();
    // Records written by hand, as a damaged or foreign row would be: no state; a last event id that is not
    // text; a position without the event it follows; a first snapshot that claims one.
    store.save(krmx::detail::snapshot_key("s", 0), {.state = {{"x", 1}}, .position = 3, .version = "snapshot@1"});
    store.save(krmx::detail::snapshot_key("s", 1),
               {.state = {{"state", 1}, {"last_event_id", 4}}, .position = 3, .version = "snapshot@1"});
    krmx::SnapshotStatistics statistics;
    CHECK(krmx::load_snapshots(store, "s", 1, statistics).empty());
    CHECK(statistics.damaged == 2);
    store.save(krmx::detail::snapshot_key("s", 0), {.state = {{"state", 1}}, .position = 3, .version = "snapshot@1"});
    store.save(krmx::detail::snapshot_key("s", 1),
               {.state = {{"state", 1}, {"last_event_id", "e"}}, .position = 0, .version = "snapshot@1"});
    CHECK(krmx::load_snapshots(store, "s", 1, statistics).empty());
    CHECK(statistics.damaged == 4);
}

TEST_CASE("a snapshot follows a stored event only with its id at its revision", "[store][snapshot]") {
    const krmx::StoredSnapshot snapshot{.position = 3, .state = {}, .last_event_id = "e2"};
    krmx::RecordedEvent record;
    record.revision = 2;
    record.id = "e2";
    CHECK(krmx::snapshot_follows(snapshot, record));
    record.revision = 3;
    CHECK_FALSE(krmx::snapshot_follows(snapshot, record));
    record.revision = 2;
    record.id = "e3";
    CHECK_FALSE(krmx::snapshot_follows(snapshot, record));
}

#if defined(KRMX_TEST_SQLITE)
TEST_CASE("a snapshot damaged by hand is skipped, and the other slot serves", "[store][snapshot][sqlite]") {
    krmx::testing::SqliteCheckpoints fixture;
    krmx::save_snapshot(fixture.open(), "s", 1, {.position = 5, .state = 5, .last_event_id = "e4"});
    krmx::save_snapshot(fixture.open(), "s", 1, {.position = 9, .state = 9, .last_event_id = "e8"});
    fixture.close();
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(fixture.path().c_str(), &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "UPDATE krmx_checkpoints SET state = replace(state, '9', '8') WHERE position = 9",
                           nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    krmx::SnapshotStatistics statistics;
    const auto found = krmx::load_snapshots(fixture.open(), "s", 1, statistics);
    REQUIRE(found.size() == 1);
    CHECK(found[0].position == 5);
    CHECK(statistics.damaged == 1);
    // The next save goes over the damaged slot, not over the one that serves.
    krmx::save_snapshot(fixture.open(), "s", 1, {.position = 12, .state = 12, .last_event_id = "e11"});
    statistics = {};
    const auto again = krmx::load_snapshots(fixture.open(), "s", 1, statistics);
    REQUIRE(again.size() == 2);
    CHECK(again[0].position == 12);
    CHECK(again[1].position == 5);
}
#endif

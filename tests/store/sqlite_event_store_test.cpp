// What only the SQLite store promises: the file survives reopening, is versioned, refuses foreign or
// newer files untouched, and reports damaged records instead of serving them.

#include <fstream>
#include <string>

#include <sqlite3.h>

#include "catch.hpp"
#include "krmx/store/sqlite.hpp"
#include "store_test_support.hpp"

using krmx::ExpectedRevision;
using krmx::NewEvent;
using krmx::SqliteDurability;
using krmx::SqliteEventStore;
using krmx::SubscribeFrom;
using krmx::testing::event;
using krmx::testing::Recorder;
using krmx::testing::TempDir;
using nlohmann::json;

namespace {

// Runs SQL on the file directly, as another program (or a broken disk) would.
void raw_sql(const std::filesystem::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* error = nullptr;
    const int code = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    INFO(message);
    REQUIRE(code == SQLITE_OK);
}

std::string raw_text(const std::filesystem::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
    std::string value;
    if (sqlite3_step(statement) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(statement, 0);
        value = text != nullptr ? reinterpret_cast<const char*>(text) : "";
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
}

}  // namespace

TEST_CASE("a new file uses WAL journaling and records its schema version", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    { SqliteEventStore store{path}; }
    CHECK(raw_text(path, "PRAGMA journal_mode") == "wal");
    CHECK(raw_text(path, "PRAGMA user_version") == std::to_string(krmx::detail::krmx_schema_version));
    CHECK(raw_text(path, "PRAGMA application_id") == std::to_string(krmx::detail::krmx_application_id));
}

TEST_CASE("a file with a newer schema version is refused with a clear error", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    { SqliteEventStore store{path}; }
    raw_sql(path, "PRAGMA user_version=99");
    try {
        SqliteEventStore store{path};
        FAIL("opening should have failed");
    } catch (const krmx::IncompatibleStoreFile& e) {
        CHECK_THAT(e.what(),
                   Catch::Matchers::Contains("schema version 99") && Catch::Matchers::Contains("newer"));
    }
    CHECK(raw_text(path, "PRAGMA user_version") == "99");
}

TEST_CASE("another application's database is refused and left untouched", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "foreign.sqlite";
    raw_sql(path, "CREATE TABLE players (name TEXT); INSERT INTO players VALUES ('alice')");
    CHECK_THROWS_WITH(SqliteEventStore{path}, Catch::Matchers::Contains("not a krmx store"));
    CHECK_THROWS_AS(krmx::SqliteCheckpointStore{path}, krmx::IncompatibleStoreFile);
    CHECK(raw_text(path, "SELECT name FROM players") == "alice");
    CHECK(raw_text(path, "PRAGMA journal_mode") == "delete");
    CHECK(raw_text(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'krmx%'") == "0");
}

TEST_CASE("a file that is not a database is refused with a clear error", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "notes.txt";
    {
        std::ofstream file{path};
        file << "these are my notes, not a database; there are enough of them to fill a header. "
             << std::string(200, 'x');
    }
    CHECK_THROWS_AS(SqliteEventStore{path}, krmx::IncompatibleStoreFile);
    CHECK_THROWS_WITH(SqliteEventStore{path}, Catch::Matchers::Contains("not a krmx store"));
}

TEST_CASE("a damaged record is reported, never served", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    {
        SqliteEventStore store{path};
        for (int i = 0; i < 4; ++i)
            (void)store.append("s", ExpectedRevision::any(), event("tick", {{"n", i}}));
    }
    // A bit flip in the payload of position 3, which SQLite itself cannot notice.
    raw_sql(path, R"(UPDATE krmx_events SET payload = '{"n":7}' WHERE position = 3)");

    SqliteEventStore store{path};
    CHECK_THROWS_AS(store.read_all(), krmx::CorruptRecord);
    CHECK_THROWS_WITH(store.read_stream("s", 1), Catch::Matchers::Contains("position 3"));
    CHECK(store.read_all(0, 2).size() == 2);
    CHECK(store.read_all(3).size() == 1);

    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_error());
    CHECK_THROWS_AS(std::rethrow_exception(recorder.error()), krmx::CorruptRecord);
    // Events of a batch that holds a damaged record are not delivered either.
    for (const auto& e : recorder.events()) CHECK(e.position < 3);
}

namespace {
// Six events: positions 1-6, streams a (revisions 0-2 at positions 1, 3, 5) and b (0-2 at 2, 4, 6).
std::filesystem::path six_events(const TempDir& dir) {
    const auto path = dir.path() / "events.sqlite";
    SqliteEventStore store{path};
    for (int i = 0; i < 6; ++i)
        (void)store.append(i % 2 == 0 ? "a" : "b", ExpectedRevision::any(), event("tick", {{"n", i}}));
    return path;
}

void check_subscription_stops_at_the_hole(SqliteEventStore& store, krmx::Position hole,
                                          krmx::EventFilter filter = {}) {
    Recorder recorder;
    auto subscription = store.subscribe(SubscribeFrom::start(), recorder.handlers(), std::move(filter));
    REQUIRE(recorder.wait_error());
    CHECK_THROWS_AS(std::rethrow_exception(recorder.error()), krmx::CorruptRecord);
    for (const auto& e : recorder.events()) CHECK(e.position < hole);  // never a jump over it
}
}  // namespace

TEST_CASE("a row missing in the middle of the log is reported, never skipped", "[store][sqlite]") {
    TempDir dir;
    const auto path = six_events(dir);
    raw_sql(path, "DELETE FROM krmx_events WHERE position = 3");  // stream a, revision 1

    SqliteEventStore store{path};
    CHECK(store.stream_revision("a") == 2);
    CHECK_THROWS_AS(store.read_all(), krmx::CorruptRecord);
    CHECK_THROWS_WITH(store.read_all(), Catch::Matchers::Contains("position 3"));
    CHECK_THROWS_AS(store.read_all(1, 2), krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_stream("a"), krmx::CorruptRecord);
    CHECK_THROWS_WITH(store.read_stream("a"), Catch::Matchers::Contains("revision 1"));
    CHECK_THROWS_AS(store.read_stream("a", 1), krmx::CorruptRecord);
    // Filtered reads cover the hole too, even when the missing event would not have passed the filter.
    CHECK_THROWS_AS(store.read_all(0, krmx::read_unbounded, krmx::EventFilter{.streams = {"b"}}),
                    krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_all(0, krmx::read_unbounded, krmx::EventFilter{.types = {"other"}}),
                    krmx::CorruptRecord);
    // What lies before or after the hole still reads.
    CHECK(store.read_all(0, 2).size() == 2);
    CHECK(store.read_all(3).size() == 3);
    CHECK(store.read_stream("a", 2).size() == 1);
    CHECK(store.read_stream("b").size() == 3);
    check_subscription_stops_at_the_hole(store, 3);
    check_subscription_stops_at_the_hole(store, 3, krmx::EventFilter{.streams = {"b"}});
}

TEST_CASE("rows missing at the end of the log or of a stream are reported", "[store][sqlite]") {
    TempDir dir;
    const auto path = six_events(dir);
    raw_sql(path, "DELETE FROM krmx_events WHERE position >= 5");  // a's revision 2, b's revision 2

    SqliteEventStore store{path};
    CHECK(store.head_position() == 6);  // the streams still count six events
    CHECK_THROWS_AS(store.read_all(), krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_all(4), krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_all(0, krmx::read_unbounded, krmx::EventFilter{.streams = {"a"}}),
                    krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_stream("a"), krmx::CorruptRecord);
    CHECK_THROWS_AS(store.read_stream("b", 2), krmx::CorruptRecord);
    CHECK(store.read_all(0, 4).size() == 4);
    CHECK(store.read_stream("a", 0, 2).size() == 2);
    check_subscription_stops_at_the_hole(store, 5);
}

TEST_CASE("a truncated krmx file is reported as damaged, not as a foreign file", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    {
        SqliteEventStore store{path};
        for (int i = 0; i < 300; ++i)
            (void)store.append("s", ExpectedRevision::any(),
                               event("tick", {{"text", std::string(100, 'x')}}));
        store.checkpoint_wal();  // everything in the main file
    }
    const auto size = std::filesystem::file_size(path);
    REQUIRE(size > 16 * 1024);
    std::filesystem::resize_file(path, size / 2);
    CHECK_THROWS_AS(SqliteEventStore{path}, krmx::CorruptRecord);
    CHECK_THROWS_AS(krmx::SqliteCheckpointStore{path}, krmx::CorruptRecord);
    std::filesystem::resize_file(path, 80);  // not even a whole SQLite header: still recognizably krmx
    CHECK_THROWS_AS(SqliteEventStore{path}, krmx::CorruptRecord);
}

TEST_CASE("moving a field's bytes into another field is detected", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    {
        SqliteEventStore store{path};
        NewEvent e = event("ab");
        e.dispatcher = "c";
        (void)store.append("s", ExpectedRevision::any(), e);
    }
    raw_sql(path, "UPDATE krmx_events SET type = 'a', dispatcher = 'bc'");
    SqliteEventStore store{path};
    CHECK_THROWS_AS(store.read_all(), krmx::CorruptRecord);
}

TEST_CASE("an event store and a checkpoint store can share one file", "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "game.sqlite";
    SqliteEventStore events{path};
    krmx::SqliteCheckpointStore checkpoints{path};
    (void)events.append("s", ExpectedRevision::any(), event("a"));
    checkpoints.save("counter", {.state = {{"counter", 1}}, .position = 1, .version = "v1"});
    CHECK(events.read_all().size() == 1);
    CHECK(checkpoints.load("counter")->position == 1);
}

TEST_CASE("appends from many threads share group commits and are all acknowledged", "[store][sqlite]") {
    TempDir dir;
    SqliteEventStore store{dir.path() / "events.sqlite",
                           {.durability = SqliteDurability::group_commit,
                            .max_batch_delay = std::chrono::microseconds{500},
                            .max_batch_events = 64}};
    constexpr int threads = 8;
    constexpr int appends = 100;
    std::vector<std::thread> writers;
    std::vector<std::vector<krmx::Position>> acknowledged(threads);
    for (int t = 0; t < threads; ++t) {
        writers.emplace_back([&, t] {
            for (int i = 0; i < appends; ++i) {
                const auto expected = i == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(i - 1);
                const auto result = store.append("w" + std::to_string(t), expected, event("e", {{"i", i}}));
                acknowledged[t].push_back(result.first_position);
            }
        });
    }
    for (auto& writer : writers) writer.join();
    CHECK(store.head_position() == threads * appends);
    for (int t = 0; t < threads; ++t) {
        const auto stream = store.read_stream("w" + std::to_string(t));
        REQUIRE(stream.size() == appends);
        for (int i = 0; i < appends; ++i) {
            CHECK(stream[i].position == acknowledged[t][i]);
            CHECK(stream[i].payload == json{{"i", i}});
        }
    }
}

TEST_CASE("two stores writing one file keep positions dense and never overwrite each other",
          "[store][sqlite]") {
    TempDir dir;
    const auto path = dir.path() / "events.sqlite";
    SqliteEventStore first{path};
    SqliteEventStore second{path};
    for (int i = 0; i < 5; ++i) {
        CHECK(first.append("a", ExpectedRevision::any(), event("x")).first_position ==
              krmx::Position(2 * i + 1));
        CHECK(second.append("b", ExpectedRevision::any(), event("y")).first_position ==
              krmx::Position(2 * i + 2));
    }
    // Expected revisions are checked against the file, not against what one store has seen.
    CHECK_THROWS_AS(first.append("b", ExpectedRevision::no_stream(), event("z")),
                    krmx::WrongExpectedRevision);
    const auto all = second.read_all();
    REQUIRE(all.size() == 10);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].position == i + 1);
}

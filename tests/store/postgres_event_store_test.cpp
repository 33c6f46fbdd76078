// What only the PostgreSQL store promises: a versioned schema that refuses foreign or newer schemas,
// positions dense and in order across processes, and subscriptions and appends that survive a dropped
// connection. The contract suite and the stress test run against it as well (see EventStoreFixtures).

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "catch.hpp"
#include "child_process.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "store_test_support.hpp"

using krmx::ExpectedRevision;
using krmx::IncompatibleStoreFile;
using krmx::NewEvent;
using krmx::Position;
using krmx::PostgresDurability;
using krmx::PostgresEventStore;
using krmx::PostgresEventStoreOptions;
using krmx::PostgresOptions;
using krmx::RecordedEvent;
using krmx::SubscribeFrom;
using krmx::testing::event;
using krmx::testing::Recorder;
using krmx::testing::shared_postgres;
using krmx::testing::unique_postgres_schema;
using nlohmann::json;

namespace {

PostgresOptions database(const std::string& schema) {
    return {.connection = shared_postgres().conninfo(), .schema = schema};
}

// SQL run on a connection of its own, as an administrator or another program would.
std::string admin_sql(const std::string& sql) {
    krmx::detail::PgConnection connection{shared_postgres().conninfo()};
    const auto result = connection.exec(sql);
    return result.rows() > 0 ? std::string{result.text(0, 0)} : std::string{};
}

// Ends every other client connection to the test database, as a failover or an administrator would.
int terminate_other_backends() {
    return std::stoi(admin_sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"));
}

// Checks, inside the callback, that delivery is dense and in order from position 1 on.
struct DenseChecker {
    std::atomic<Position> last{0};
    std::atomic<int> violations{0};
    std::atomic<int> errors{0};
    std::atomic<int> caught_up{0};
    krmx::SubscriptionHandlers handlers() {
        return {.on_event =
                    [this](const RecordedEvent& e) {
                        if (e.position != last + 1) ++violations;
                        last = e.position;
                    },
                .on_caught_up = [this] { ++caught_up; },
                .on_error =
                    [this](std::exception_ptr) {
                        ++errors;
                    }};
    }
    bool wait_until(Position head, std::chrono::seconds limit = std::chrono::seconds{60}) const {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (last < head && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        return last >= head;
    }
};

}  // namespace

TEST_CASE("a new PostgreSQL schema records that it is a krmx store and its schema version",
          "[store][postgres]") {
    const auto schema = unique_postgres_schema("meta");
    PostgresEventStore store{database(schema)};
    CHECK(admin_sql("SELECT value FROM " + schema + ".krmx_meta WHERE key = 'format'") == "krmx");
    CHECK(admin_sql("SELECT value FROM " + schema + ".krmx_meta WHERE key = 'schema_version'") == "1");
    // Opening it again finds the schema and keeps its events.
    (void)store.append("s", ExpectedRevision::any(), event("a"));
    PostgresEventStore again{database(schema)};
    CHECK(again.head_position() == 1);
}

TEST_CASE("a PostgreSQL schema with a newer krmx schema version is refused with a clear error",
          "[store][postgres]") {
    const auto schema = unique_postgres_schema("newer");
    { PostgresEventStore store{database(schema)}; }
    admin_sql("UPDATE " + schema + ".krmx_meta SET value = '99' WHERE key = 'schema_version'");
    try {
        PostgresEventStore store{database(schema)};
        FAIL("a newer schema was opened");
    } catch (const IncompatibleStoreFile& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("schema version 99, newer than version 1"));
    }
}

TEST_CASE("another application's PostgreSQL schema is refused and left untouched", "[store][postgres]") {
    const auto schema = unique_postgres_schema("foreign");
    admin_sql("CREATE SCHEMA " + schema + "; CREATE TABLE " + schema + ".players (name text)");
    try {
        PostgresEventStore store{database(schema)};
        FAIL("a foreign schema was opened");
    } catch (const IncompatibleStoreFile& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("is not a krmx store"));
    }
    CHECK(admin_sql("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema + "'") == "1");
}

TEST_CASE("a schema name that is not a plain identifier is refused before anything is sent",
          "[store][postgres]") {
    for (const std::string& bad :
         std::vector<std::string>{"", "Upper", "with space", "a;drop", "1digit", std::string(49, 'a')}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(PostgresEventStore(database(bad)), krmx::StoreError);
    }
}

TEST_CASE("the PostgreSQL connection string comes from KRMX_POSTGRES_URL when the caller gives none",
          "[store][postgres]") {
    const auto schema = unique_postgres_schema("env");
    ::setenv("KRMX_POSTGRES_URL", shared_postgres().conninfo().c_str(), 1);
    PostgresEventStore store{PostgresOptions{.schema = schema}};
    ::unsetenv("KRMX_POSTGRES_URL");
    (void)store.append("s", ExpectedRevision::no_stream(), event("a"));
    PostgresEventStore same{database(schema)};
    CHECK(same.stream_revision("s") == 0);
}

TEST_CASE("text PostgreSQL cannot hold is refused and nothing is written", "[store][postgres]") {
    PostgresEventStore store{database(unique_postgres_schema("nul"))};
    CHECK_THROWS_AS(store.append(std::string_view{"a\0b", 3}, ExpectedRevision::any(), event("x")),
                    krmx::InvalidAppend);
    CHECK_THROWS_AS(store.append("s", ExpectedRevision::any(), event(std::string{"x\0y", 3})),
                    krmx::InvalidAppend);
    CHECK(store.head_position() == 0);
}

TEST_CASE("two stores on one schema share dense positions and each hears the other's appends live",
          "[store][postgres]") {
    const auto schema = unique_postgres_schema("two");
    PostgresEventStore a{database(schema)};
    // A long poll interval: delivery must come from the notification, not from polling.
    PostgresEventStore b{database(schema),
                         PostgresEventStoreOptions{.poll_interval = std::chrono::seconds{30}}};
    Recorder recorder;
    auto subscription = b.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_caught_up());
    for (int i = 0; i < 5; ++i) {
        (void)a.append("game/a", ExpectedRevision::any(), event("from-a", {{"i", i}}));
        (void)b.append("game/b", ExpectedRevision::any(), event("from-b", {{"i", i}}));
    }
    REQUIRE(recorder.wait_for_events(10, std::chrono::seconds{10}));
    CHECK(recorder.out_of_order() == 0);
    const auto positions = recorder.positions();
    for (std::size_t i = 0; i < positions.size(); ++i) CHECK(positions[i] == i + 1);
    CHECK(a.head_position() == 10);
    CHECK(b.stream_revision("game/a") == 4);
}

TEST_CASE("positions are dense and delivered in order while several processes append at once",
          "[store][postgres][processes]") {
    const auto schema = unique_postgres_schema("procs");
    PostgresEventStore store{database(schema),
                             PostgresEventStoreOptions{.durability = PostgresDurability::group_commit}};
    DenseChecker early;
    auto early_subscription = store.subscribe(SubscribeFrom::start(), early.handlers());

    constexpr int writers = 4;
    constexpr int appends = 120;
    std::vector<std::unique_ptr<krmx::testing::ChildProcess>> children;
    for (int w = 0; w < writers; ++w) {
        children.push_back(std::make_unique<krmx::testing::ChildProcess>(
            KRMX_POSTGRES_WRITER,
            std::vector<std::string>{shared_postgres().conninfo(), schema, std::to_string(w),
                                     std::to_string(appends), w % 2 == 0 ? "shared" : "own"}));
    }
    // This process writes too, and a second subscriber joins in the middle.
    for (int i = 0; i < 60; ++i) (void)store.append("local", ExpectedRevision::any(), event("l", {{"i", i}}));
    DenseChecker late;
    auto late_subscription = store.subscribe(SubscribeFrom::start(), late.handlers());
    for (auto& child : children) {
        REQUIRE(child->wait_for_line("done", std::chrono::seconds{120}));
        CHECK(child->exited_cleanly());
    }

    std::size_t expected = 60;
    for (int w = 0; w < writers; ++w)
        for (int i = 0; i < appends; ++i) expected += static_cast<std::size_t>(1 + (i + w) % 3);
    const Position head = store.head_position();
    REQUIRE(head == expected);
    const auto all = store.read_all();
    REQUIRE(all.size() == expected);
    std::set<std::tuple<int, int, int>> seen;
    for (std::size_t i = 0; i < all.size(); ++i) {
        REQUIRE(all[i].position == i + 1);
        if (all[i].type == "e") {
            const auto& p = *all[i].payload;
            CHECK(seen.emplace(p["w"].get<int>(), p["i"].get<int>(), p["k"].get<int>()).second);
        }
    }
    for (const DenseChecker* checker : {&early, &late}) {
        REQUIRE(checker->wait_until(head));
        CHECK(checker->violations == 0);
        CHECK(checker->errors == 0);
        CHECK(checker->caught_up == 1);
    }
}

TEST_CASE("appends and subscriptions survive their connections being terminated mid-stream",
          "[store][postgres]") {
    const auto schema = unique_postgres_schema("drop");
    PostgresEventStore store{database(schema),
                             PostgresEventStoreOptions{.durability = PostgresDurability::group_commit}};
    PostgresEventStore reader{database(schema)};
    Recorder recorder;
    auto subscription = reader.subscribe(SubscribeFrom::start(), recorder.handlers());
    REQUIRE(recorder.wait_caught_up());

    constexpr int total = 300;
    std::atomic<int> acknowledged{0};
    std::atomic<int> failures{0};
    std::thread writer([&] {
        for (int i = 0; i < total; ++i) {
            try {
                (void)store.append("s", ExpectedRevision::any(), event("tick", {{"i", i}}));
                ++acknowledged;
            } catch (...) {
                ++failures;
            }
            if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds{2});
        }
    });
    int terminated = 0;
    for (int round = 0; round < 5; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds{40});
        terminated += terminate_other_backends();
    }
    writer.join();
    CHECK(terminated > 0);
    CHECK(failures == 0);
    CHECK(acknowledged == total);
    REQUIRE(recorder.wait_for_events(total, std::chrono::seconds{60}));
    // What the stores recovered from without an exception is counted where a user can see it.
    CHECK(store.statistics().connection_retries > 0);
    for (int i = 0; i < 1000 && reader.statistics().listener_failures == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    CHECK(reader.statistics().listener_failures > 0);
    std::this_thread::sleep_for(std::chrono::milliseconds{100});  // a duplicate would show up now
    const auto events = recorder.events();
    CHECK(recorder.error() == nullptr);
    REQUIRE(events.size() == static_cast<std::size_t>(total));
    for (int i = 0; i < total; ++i) {
        CHECK(events[static_cast<std::size_t>(i)].position == static_cast<Position>(i + 1));
        CHECK((*events[static_cast<std::size_t>(i)].payload)["i"] == i);
    }
    CHECK(recorder.caught_up() == 1);
}

TEST_CASE("a bulk read's read-ahead never hides events appended after it was sent", "[store][postgres]") {
    PostgresEventStore store{database(unique_postgres_schema("ahead"))};
    const auto append = [&](int count) {
        std::vector<NewEvent> batch;
        for (int i = 0; i < count; ++i) batch.push_back(event("e", json(i)));
        (void)store.append("s", ExpectedRevision::any(), batch);
    };
    const auto positions = [](const std::vector<RecordedEvent>& events) {
        std::vector<Position> result;
        for (const auto& e : events) result.push_back(e.position);
        return result;
    };
    const auto range = [](Position from, Position to) {
        std::vector<Position> result;
        for (Position p = from; p <= to; ++p) result.push_back(p);
        return result;
    };
    append(1500);
    // A full window of 1024 sends (1024, 2048] ahead, which finds only 476 events yet.
    CHECK(positions(store.read_all(0, 1024)) == range(1, 1024));
    append(1000);
    // That short answer is older than this call: it is read again, and the append is in it.
    CHECK(positions(store.read_all(1024, 1024)) == range(1025, 2048));
    // Another statement on the connection drops the window sent ahead; the next read is still exact.
    CHECK(store.read_stream("s", 10, 2).size() == 2);
    CHECK(positions(store.read_all(2048, 1024)) == range(2049, 2500));
    // Read in windows from the start, everything comes exactly once, in order.
    std::vector<Position> all;
    for (Position after = 0;;) {
        const auto batch = store.read_all(after, 1024);
        if (batch.empty()) break;
        const auto got = positions(batch);
        all.insert(all.end(), got.begin(), got.end());
        after = batch.back().position;
    }
    CHECK(all == range(1, 2500));
    CHECK(store.read_all(0).size() == 2500);
}

TEST_CASE("a streamed read whose connection is terminated mid-COPY resumes with nothing lost or repeated",
          "[store][postgres]") {
    PostgresEventStore store{database(unique_postgres_schema("copydrop")),
                             PostgresEventStoreOptions{.durability = PostgresDurability::group_commit}};
    // 60 000 events in 3 streams: several windows, each far more than a socket buffer holds.
    constexpr int total = 60'000;
    std::vector<NewEvent> batch;
    for (int i = 0; i < total; ++i) {
        batch.push_back(event("tick", {{"i", i}}));
        if (batch.size() == 2'000) {
            (void)store.append("s" + std::to_string(i % 3), ExpectedRevision::any(), batch);
            batch.clear();
        }
    }
    std::vector<Position> seen;
    int terminations = 0;
    const auto count = krmx::for_each_event(store, 0, [&](const RecordedEvent& e) {
        seen.push_back(e.position);
        // Three times, in the middle of a window: the COPY's backend goes away under the reader.
        if (e.position == 100 || e.position == 20'000 || e.position == 45'123) {
            terminations += std::stoi(
                admin_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                          "current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY (SELECT%'"));
        }
    });
    CHECK(terminations == 3);
    CHECK(count == static_cast<std::size_t>(total));
    REQUIRE(seen.size() == static_cast<std::size_t>(total));
    for (std::size_t i = 0; i < seen.size(); ++i) {
        if (seen[i] != i + 1) FAIL("position " << seen[i] << " delivered where " << i + 1 << " belongs");
    }
    CHECK(store.read_all(0, 10).size() == 10);
}

TEST_CASE("rows of a binary COPY that are not exactly what PostgreSQL sends are corrupt, never read past",
          "[store][postgres]") {
    using krmx::detail::CopyTuple;
    const std::string header{"PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19};
    const auto tuple = [](std::initializer_list<std::optional<std::string>> fields) {
        std::string message;
        const auto put32 = [&](std::uint32_t v) {
            for (int shift = 24; shift >= 0; shift -= 8) message += static_cast<char>((v >> shift) & 0xFF);
        };
        message += static_cast<char>(0);
        message += static_cast<char>(fields.size());
        for (const auto& field : fields) {
            put32(field ? static_cast<std::uint32_t>(field->size()) : 0xFFFFFFFFu);
            if (field) message += *field;
        }
        return message;
    };
    const std::string eight{"\0\0\0\0\0\0\1\2", 8};
    const std::string good = tuple({eight, std::string{"abc"}, std::nullopt});
    const std::string trailer{"\377\377", 2};

    CopyTuple reader;
    const std::string first = header + good;  // the fields are views into the message
    REQUIRE(reader.read(first));
    CHECK(reader.fields() == 3);
    CHECK(reader.int64(0) == 258);
    CHECK(reader.text(1) == "abc");
    CHECK_FALSE(reader.optional_text(2).has_value());
    CHECK_THROWS_AS(reader.text(2), krmx::CorruptRecord);   // NULL where a value belongs
    CHECK_THROWS_AS(reader.int64(1), krmx::CorruptRecord);  // not eight bytes
    CHECK_THROWS_AS(reader.text(3), krmx::CorruptRecord);   // no such column
    REQUIRE(reader.read(good));
    CHECK_FALSE(reader.read(trailer));

    const auto corrupt = [&](const std::string& first, const std::string& second = {}) {
        CopyTuple fresh;
        try {
            (void)fresh.read(first);
            if (!second.empty()) (void)fresh.read(second);
        } catch (const krmx::CorruptRecord&) {
            return true;
        }
        return false;
    };
    CHECK(corrupt(good));                                                          // no header
    CHECK(corrupt(header.substr(0, 15)));                                          // cut inside the header
    CHECK(corrupt(std::string{"PGCOPY\n\377\r\n\0\0\1\0\0\0\0\0\0", 19} + good));  // flags it does not know
    CHECK(corrupt(std::string{"PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\5", 19} + good));  // extension past the end
    CHECK(corrupt(header + good.substr(0, good.size() - 1)));                      // a field cut short
    CHECK(corrupt(header + good + "x"));                        // bytes after the last field
    CHECK(corrupt(header + std::string{"\0", 1}));              // cut inside the field count
    CHECK(corrupt(header + std::string{"\0\1\200\0\0\0", 6}));  // a negative length
    CHECK(corrupt(header + std::string{"\0\1\0\0\0\7ab", 8}));  // a length past the end
    CHECK(corrupt(header + std::string{"\0\x7f", 2}));          // more fields than any row has
    CHECK(corrupt(header + good, trailer + "x"));               // bytes after the trailer
}

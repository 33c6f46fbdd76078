// Write models from snapshots: a command loads its entity from the newest usable snapshot plus the events
// after it, and saves the next snapshot every `every_events` events; every unusable snapshot (another
// revision, damaged, unreadable, of another stream) is skipped and counted, and the result is the state a
// full replay gives. Counted in events folded, not in time.

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "krmx/models/write_model.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "krmx/store/snapshot.hpp"
#include "models_test_support.hpp"
#include "stores.hpp"

using namespace bookstore;

// A namespace of its own: the unity build puts the models tests in one translation unit, where another file
// has a Shelf of its own.
namespace write_model_snapshot_tests {
namespace {

// One book's copies on a shelf; `changes` counts the events folded in, so a state that missed or doubled
// an event differs from the full replay's.
struct Shelf {
    bool exists = false;
    int copies = 0;
    int lent = 0;
    std::uint64_t changes = 0;
    friend bool operator==(const Shelf&, const Shelf&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Shelf, exists, copies, lent, changes)

// A shelf whose snapshots are written but never read back: its from_json throws.
struct FragileShelf : Shelf {};
void to_json(nlohmann::json& j, const FragileShelf& shelf) {
    to_json(j, static_cast<const Shelf&>(shelf));
}
void from_json(const nlohmann::json&, FragileShelf&) {
    throw std::runtime_error("this shelf cannot be read back");
}

// The bookstore's rules: a stored lending of a copy that is not there is refused (and skipped on catch-up).
template <class S>
const krmx::StreamModel<S>& shelf_rules() {
    static const auto m = krmx::StreamModel<S>{}
                              .when(book_added,
                                    [](S& s, std::string_view, const BookAdded& e) {
                                        s.exists = true;
                                        s.copies = e.copies;
                                        ++s.changes;
                                    })
                              .when(
                                  book_lent,
                                  [](const S& s, std::string_view, const Lending&) {
                                      return s.lent < s.copies ? krmx::allow() : krmx::refuse("no copy left");
                                  },
                                  [](S& s, std::string_view, const Lending&) {
                                      ++s.lent;
                                      ++s.changes;
                                  })
                              .when(
                                  book_returned,
                                  [](const S& s, std::string_view, const Lending&) {
                                      return s.lent > 0 ? krmx::allow() : krmx::refuse("no copy lent");
                                  },
                                  [](S& s, std::string_view, const Lending&) {
                                      --s.lent;
                                      ++s.changes;
                                  });
    return m;
}

template <class S = Shelf>
krmx::WriteModel<S> shelf_model(std::string name = "shelf.write") {
    return krmx::WriteModel<S>::reducing(std::move(name), catalog(), shelf_rules<S>())
        .on_stream(stream_of("1"));
}

template <class Store>
void add_book(Store& store) {
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 3}));
}

// One command: lend a copy while one is left, else take one back. Every command appends one event.
template <class S, class Store>
krmx::WriteResult<S> command(const krmx::WriteModel<S>& model, Store& store) {
    return model.with_source(store).handle([](krmx::WriteContext<S>& w) {
        if (w.state().lent < w.state().copies) {
            w.emit(book_lent(Lending{"1", "alice"}));
        } else {
            w.emit(book_returned(Lending{"1", "alice"}));
        }
    });
}

// `n` commands, all appended; the last result.
template <class S, class Store>
krmx::WriteResult<S> commands(const krmx::WriteModel<S>& model, Store& store, int n) {
    krmx::WriteResult<S> last;
    for (int i = 0; i < n; ++i) {
        last = command(model, store);
        REQUIRE(last.appended());
    }
    return last;
}

// The state a write model without snapshots reads: every stored event folded.
template <class Store>
krmx::WriteResult<Shelf> full_replay(Store& store) {
    return shelf_model().with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
}

constexpr krmx::WriteSnapshotOptions every_100{.every_events = 100, .revision = 1};

// A checkpoint store whose saves fail while `failing` (a full disk), and whose loads work.
struct FailingSaves {
    krmx::MemoryCheckpointStore inner;
    bool failing = true;
    [[nodiscard]] std::optional<krmx::Checkpoint> load(std::string_view key) const { return inner.load(key); }
    void save(std::string_view key, const krmx::Checkpoint& checkpoint) {
        if (failing) throw krmx::StoreError("the disk is full");
        inner.save(key, checkpoint);
    }
    bool erase(std::string_view key) { return inner.erase(key); }
};

// An event store and a checkpoint store of one backend.
struct MemoryBackend {
    static constexpr const char* name = "memory";
    krmx::testing::MemoryStore events;
    krmx::testing::MemoryCheckpoints checkpoints;
};
#if defined(KRMX_TEST_SQLITE)
struct SqliteBackend {
    static constexpr const char* name = "sqlite";
    krmx::testing::SqliteGroupCommitStore events;
    krmx::testing::SqliteCheckpoints checkpoints;
};
using SqliteBackends = std::tuple<SqliteBackend>;
#else
using SqliteBackends = std::tuple<>;
#endif
#if defined(KRMX_TEST_POSTGRES)
struct PostgresBackend {
    static constexpr const char* name = "postgres";
    krmx::testing::PostgresGroupCommitStore events;
    krmx::testing::PostgresCheckpoints checkpoints;
};
using PostgresBackends = std::tuple<PostgresBackend>;
#else
using PostgresBackends = std::tuple<>;
#endif
using Backends = decltype(std::tuple_cat(std::tuple<MemoryBackend>{}, SqliteBackends{}, PostgresBackends{}));

}  // namespace

TEMPLATE_LIST_TEST_CASE("after 400 commands a write model with snapshots folds fewer than 100 stored events",
                        "[models][write][snapshot]", Backends) {
    TestType backend;
    INFO(TestType::name);
    auto& store = backend.events.open();
    add_book(store);
    const auto model = shelf_model().snapshots(backend.checkpoints.open(), every_100);

    std::uint64_t most_after_first_snapshot = 0;
    std::uint64_t saved = 0;
    for (int i = 0; i < 400; ++i) {
        const auto result = command(model, store);
        REQUIRE(result.appended());
        REQUIRE(result.snapshots.skipped() == 0);
        REQUIRE(result.snapshots.save_failures == 0);
        saved += result.snapshots.saved;
        if (i < 99) {
            REQUIRE_FALSE(result.from_snapshot);
            REQUIRE(result.replayed == static_cast<std::uint64_t>(i) + 1);  // all of it, so far
        } else {
            REQUIRE(result.from_snapshot);
            most_after_first_snapshot = std::max(most_after_first_snapshot, result.replayed);
        }
    }
    // Saved at positions 100, 200, 300, 400: the stream holds 401 events.
    CHECK(saved == 4);
    CHECK(most_after_first_snapshot < 100);

    const auto last = command(model, store);
    CHECK(last.appended());
    CHECK(last.snapshots.restored == 1);
    CHECK(last.from_snapshot == 400);
    CHECK(last.replayed == 1);
    const auto full = full_replay(store);
    CHECK(full.replayed == 402);
    CHECK_FALSE(full.from_snapshot);
    CHECK(last.state == full.state);
    CHECK(last.state.changes == 402);

    // After a restart, the stored snapshots serve.
    backend.events.reopen();
    backend.checkpoints.reopen();
    const auto restarted = shelf_model().snapshots(backend.checkpoints.open(), every_100);
    const auto again = restarted.with_source(backend.events.open()).handle([](krmx::WriteContext<Shelf>&) {});
    CHECK(again.from_snapshot == 400);
    CHECK(again.replayed == 2);
    CHECK(again.state == full.state);
}

TEST_CASE(
    "a snapshot is saved once every_events events were appended since the one a command started from, "
    "after the event whose id it records",
    "[models][write][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    add_book(store);
    const auto model = shelf_model().snapshots(checkpoints, {.every_events = 10, .revision = 1});
    krmx::SnapshotStatistics statistics;
    (void)commands(model, store, 8);  // the stream holds 9 events
    CHECK(krmx::load_snapshots(checkpoints, model.snapshot_stream(), 1, statistics).empty());
    const auto tenth = command(model, store);
    CHECK(tenth.snapshots.saved == 1);
    const auto found = krmx::load_snapshots(checkpoints, model.snapshot_stream(), 1, statistics);
    REQUIRE(found.size() == 1);
    CHECK(found[0].position == 10);
    CHECK(found[0].state == nlohmann::json(tenth.state));
    // The write model gave its events their ids: the snapshot follows the stored event at revision 9.
    const auto stored = store.read_stream(stream_of("1"), 9, 1);
    REQUIRE(stored.size() == 1);
    CHECK_FALSE(stored[0].id.empty());
    CHECK(krmx::snapshot_follows(found[0], stored[0]));
    // The next ones: 10 events past the snapshot, not past the start.
    CHECK(commands(model, store, 9).snapshots.saved == 0);
    const auto twentieth = command(model, store);
    CHECK(twentieth.snapshots.saved == 1);
    CHECK(twentieth.from_snapshot == 10);
    CHECK(krmx::load_snapshots(checkpoints, model.snapshot_stream(), 1, statistics).front().position == 20);
    // Another model's snapshots of the same stream are its own.
    const auto other = shelf_model("shelf.audit").snapshots(checkpoints, every_100);
    const auto audit = other.with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
    CHECK_FALSE(audit.from_snapshot);
    CHECK(audit.snapshots.skipped() == 0);
    CHECK(audit.replayed == 20);
}

TEST_CASE("a snapshot of another revision is skipped and counted, and the command replays everything",
          "[models][write][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    add_book(store);
    (void)commands(shelf_model().snapshots(checkpoints, every_100), store, 150);  // a snapshot at 100

    const auto revised = shelf_model().snapshots(checkpoints, {.every_events = 100, .revision = 2});
    const auto first = command(revised, store);
    CHECK(first.appended());
    CHECK(first.snapshots.other_revision == 1);
    CHECK(first.snapshots.restored == 0);
    CHECK_FALSE(first.from_snapshot);
    CHECK(first.replayed == 151);
    CHECK(first.snapshots.saved == 1);  // of revision 2, at 152
    const auto second = command(revised, store);
    CHECK(second.from_snapshot == 152);
    CHECK(second.replayed == 0);
    CHECK(second.state == full_replay(store).state);
}

TEST_CASE("a snapshot whose last event id the stream does not hold is skipped and counted",
          "[models][write][snapshot]") {
    krmx::MemoryCheckpointStore checkpoints;
    const auto model = shelf_model().snapshots(checkpoints, every_100);

    SECTION("written by hand") {
        krmx::MemoryEventStore store;
        add_book(store);
        (void)commands(shelf_model(), store, 150);  // no snapshots
        const Shelf wrong{.exists = true, .copies = 99, .lent = 0, .changes = 7};
        krmx::save_snapshot(
            checkpoints, model.snapshot_stream(), 1,
            {.position = 120, .state = nlohmann::json(wrong), .last_event_id = "not-the-event"});
        const auto result = model.with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
        CHECK(result.snapshots.not_following == 1);
        CHECK_FALSE(result.from_snapshot);
        CHECK(result.replayed == 151);
        CHECK(result.state == full_replay(store).state);

        // With the id of the stored event, the same snapshot is trusted: the id is what is checked.
        const auto id = store.read_stream(stream_of("1"), 119, 1).at(0).id;
        krmx::save_snapshot(checkpoints, model.snapshot_stream(), 1,
                            {.position = 120, .state = nlohmann::json(wrong), .last_event_id = id});
        const auto trusted = model.with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
        CHECK(trusted.from_snapshot == 120);
        CHECK(trusted.state.copies == 99);
    }

    SECTION("taken of another store's stream of the same name") {
        krmx::MemoryEventStore first;
        add_book(first);
        (void)commands(model, first, 250);  // snapshots at 100 and 200
        krmx::SnapshotStatistics statistics;
        REQUIRE(krmx::load_snapshots(checkpoints, model.snapshot_stream(), 1, statistics).size() == 2);

        krmx::MemoryEventStore replaced;  // the stream, written again: longer than either snapshot
        add_book(replaced);
        (void)commands(shelf_model(), replaced, 219);
        const auto result = command(model, replaced);
        CHECK(result.appended());
        CHECK(result.snapshots.not_following == 2);
        CHECK_FALSE(result.from_snapshot);
        CHECK(result.replayed == 220);
        CHECK(result.snapshots.saved == 1);
        CHECK(result.state == full_replay(replaced).state);
        CHECK(command(model, replaced).from_snapshot == 221);

        krmx::MemoryEventStore shorter;  // shorter than the snapshots: nothing at their positions
        add_book(shorter);
        (void)commands(shelf_model(), shorter, 49);
        const auto short_result = model.with_source(shorter).handle([](krmx::WriteContext<Shelf>&) {});
        CHECK(short_result.snapshots.not_following == 2);
        CHECK(short_result.replayed == 50);
        CHECK(short_result.state == full_replay(shorter).state);
    }
}

TEST_CASE("a state whose from_json throws is counted as unreadable, and the command replays everything",
          "[models][write][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    add_book(store);
    const auto model = shelf_model<FragileShelf>().snapshots(checkpoints, every_100);
    const auto last = commands(model, store, 150);  // saved, never read back: saved again and again
    CHECK(last.snapshots.unreadable == 2);
    CHECK(last.snapshots.restored == 0);
    CHECK_FALSE(last.from_snapshot);
    CHECK(last.replayed == 150);
    CHECK(last.snapshots.saved == 1);
    CHECK(static_cast<const Shelf&>(last.state) == full_replay(store).state);
}

TEST_CASE("a snapshot that cannot be saved does not fail the command", "[models][write][snapshot]") {
    krmx::MemoryEventStore store;
    FailingSaves checkpoints;
    add_book(store);
    const auto model = shelf_model().snapshots(checkpoints, every_100);
    (void)commands(model, store, 98);
    const auto failed = command(model, store);  // the 100th event: a save is due
    CHECK(failed.appended());
    CHECK(failed.snapshots.save_failures == 1);
    CHECK(failed.snapshots.saved == 0);
    CHECK(store.stream_revision(stream_of("1")) == 99);
    // Still due, still failing: counted again, and the commands go on.
    CHECK(command(model, store).snapshots.save_failures == 1);

    checkpoints.failing = false;
    CHECK(command(model, store).snapshots.saved == 1);
    const auto restored = command(model, store);
    CHECK(restored.from_snapshot == 102);
    CHECK(restored.replayed == 0);
    CHECK(restored.state == full_replay(store).state);
}

TEST_CASE("stored events after a snapshot that the model refuses are skipped, as in a full replay",
          "[models][write][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    add_book(store);
    const auto model = shelf_model().snapshots(checkpoints, every_100);
    (void)commands(model, store, 120);
    // Lendings appended past the write model: no copy is left for most of them.
    for (int i = 0; i < 5; ++i) models_test::append(store, "1", book_lent(Lending{"1", "mallory"}));
    const auto result = model.with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
    const auto full = full_replay(store);
    CHECK(result.from_snapshot == 100);
    CHECK(result.replayed == 26);  // revisions 100..125
    CHECK(result.skipped >= 4);
    CHECK(result.skipped == full.skipped);
    CHECK(result.state == full.state);
}

#if defined(KRMX_TEST_SQLITE)
namespace {
void damage_snapshots(const std::filesystem::path& path, const std::string& where) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    const std::string sql =
        R"(UPDATE krmx_checkpoints SET state = replace(state, '"lent"', '"lend"') WHERE )" + where;
    CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    CHECK(sqlite3_changes(db) > 0);
    sqlite3_close(db);
}
}  // namespace

TEST_CASE("a damaged SQLite snapshot is skipped: the other slot serves, or a full replay",
          "[models][write][snapshot][sqlite]") {
    krmx::testing::SqliteStore events;
    krmx::testing::SqliteCheckpoints checkpoints;
    auto& store = events.open();
    add_book(store);
    (void)commands(shelf_model().snapshots(checkpoints.open(), every_100), store, 250);  // at 100 and 200

    checkpoints.close();
    damage_snapshots(checkpoints.path(), "position = 200");
    const auto model = shelf_model().snapshots(checkpoints.open(), every_100);
    const auto older = command(model, store);
    CHECK(older.appended());
    CHECK(older.snapshots.damaged == 1);
    CHECK(older.from_snapshot == 100);
    CHECK(older.replayed == 151);       // revisions 100..250
    CHECK(older.snapshots.saved == 1);  // over the damaged slot, at 252
    CHECK(older.state == full_replay(store).state);

    checkpoints.close();
    damage_snapshots(checkpoints.path(), "1 = 1");
    const auto again = shelf_model().snapshots(checkpoints.open(), every_100);
    const auto full = again.with_source(store).handle([](krmx::WriteContext<Shelf>&) {});
    CHECK(full.snapshots.damaged == 2);
    CHECK_FALSE(full.from_snapshot);
    CHECK(full.replayed == 252);
    CHECK(full.state == full_replay(store).state);
}
#endif

}  // namespace write_model_snapshot_tests

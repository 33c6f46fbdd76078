#pragma once
// The stores tests run against, one family for every test folder: event stores in memory, in SQLite
// (KRMX_TEST_SQLITE) and in PostgreSQL (KRMX_TEST_POSTGRES, on the test executable's throw-away server), and
// the checkpoint stores beside them. Each is a fixture that owns its store and a place of its own (a file in
// a fresh directory, a fresh schema), so that test cases never share events:
// - `open()`: the store, opened when the fixture is made (and again after `close()`);
// - `reopen()`: a restart, the store closed and opened again on the same place, so that only what reached it
//   survives (a memory store lives as long as the process, so it keeps everything);
// - `close()`: the store closed (a memory store goes away with everything in it).
// `Store` is the store's type and `name` says which variant it is.
//
// KRMX_DURABLE_STORES lists the event stores with their default options (memory, SQLite, PostgreSQL) for
// TEMPLATE_TEST_CASE; krmx::testing::EventStoreFixtures lists every variant the store contract runs against
// (SQLite synced and with group commit) for TEMPLATE_LIST_TEST_CASE, CheckpointStoreFixtures the checkpoint
// stores.

#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/memory_event_store.hpp"
#if defined(KRMX_TEST_SQLITE)
#include "krmx/store/sqlite_checkpoint_store.hpp"
#include "krmx/store/sqlite_event_store.hpp"
#include "temp_dir.hpp"
#endif
#if defined(KRMX_TEST_POSTGRES)
#include "krmx/store/postgres_checkpoint_store.hpp"
#include "krmx/store/postgres_event_store.hpp"
#include "postgres_server.hpp"
#endif

namespace krmx::testing {

/// A fixture for a store that keeps nothing beyond the process: `reopen()` keeps the store as it is.
template <class S>
struct InMemory {
    using Store = S;
    static constexpr const char* name = "memory";
    std::unique_ptr<Store> store = std::make_unique<Store>();
    Store& open() {
        if (!store) store = std::make_unique<Store>();
        return *store;
    }
    void reopen() {}  // a memory store lives as long as the process
    void close() { store.reset(); }
};

/// A fixture for a store on a place of its own, opened with `make()`: `reopen()` is a restart.
template <class Place>
struct Durable : Place {
    using Store = typename Place::Store;
    std::unique_ptr<Store> store;
    Durable() { reopen(); }
    Store& open() {
        if (!store) reopen();
        return *store;
    }
    void reopen() {
        store.reset();  // closed before it is opened again, as in a restart
        store = Place::make();
    }
    void close() { store.reset(); }
};

using MemoryStore = InMemory<MemoryEventStore>;
using MemoryCheckpoints = InMemory<MemoryCheckpointStore>;

#if defined(KRMX_TEST_SQLITE)
/// An SQLite file of its own, in a directory removed with the fixture.
template <class S>
struct SqliteFile {
    using Store = S;
    TempDir dir;
    [[nodiscard]] std::filesystem::path path() const { return dir.path() / "store.sqlite"; }
};

template <SqliteDurability durability>
struct SqliteEventPlace : SqliteFile<SqliteEventStore> {
    static constexpr const char* name =
        durability == SqliteDurability::synced ? "sqlite synced" : "sqlite group";
    [[nodiscard]] std::unique_ptr<SqliteEventStore> make() const {
        return std::make_unique<SqliteEventStore>(path(), SqliteEventStoreOptions{.durability = durability});
    }
};

struct SqliteCheckpointPlace : SqliteFile<SqliteCheckpointStore> {
    static constexpr const char* name = "sqlite";
    [[nodiscard]] std::unique_ptr<SqliteCheckpointStore> make() const {
        return std::make_unique<SqliteCheckpointStore>(path());
    }
};

/// SQLite with its default options (every commit synced).
using SqliteStore = Durable<SqliteEventPlace<SqliteDurability::synced>>;
using SqliteGroupCommitStore = Durable<SqliteEventPlace<SqliteDurability::group_commit>>;
using SqliteCheckpoints = Durable<SqliteCheckpointPlace>;
#define KRMX_DURABLE_SQLITE , krmx::testing::SqliteStore
using SqliteEventStoreFixtures = std::tuple<SqliteStore, SqliteGroupCommitStore>;
using SqliteCheckpointStoreFixtures = std::tuple<SqliteCheckpoints>;
#else
#define KRMX_DURABLE_SQLITE
using SqliteEventStoreFixtures = std::tuple<>;
using SqliteCheckpointStoreFixtures = std::tuple<>;
#endif

#if defined(KRMX_TEST_POSTGRES)
/// A PostgreSQL schema of its own on the executable's one server.
struct PostgresSchema {
    PostgresOptions database{.connection = shared_postgres().conninfo(),
                             .schema = unique_postgres_schema("store")};
};

template <PostgresDurability durability>
struct PostgresEventPlace : PostgresSchema {
    using Store = PostgresEventStore;
    static constexpr const char* name =
        durability == PostgresDurability::synced ? "postgres synced" : "postgres group";
    [[nodiscard]] std::unique_ptr<PostgresEventStore> make() const {
        return std::make_unique<PostgresEventStore>(database,
                                                    PostgresEventStoreOptions{.durability = durability});
    }
};

struct PostgresCheckpointPlace : PostgresSchema {
    using Store = PostgresCheckpointStore;
    static constexpr const char* name = "postgres";
    [[nodiscard]] std::unique_ptr<PostgresCheckpointStore> make() const {
        return std::make_unique<PostgresCheckpointStore>(database);
    }
};

/// PostgreSQL with its default options (every commit flushed).
using PostgresStore = Durable<PostgresEventPlace<PostgresDurability::synced>>;
using PostgresGroupCommitStore = Durable<PostgresEventPlace<PostgresDurability::group_commit>>;
using PostgresCheckpoints = Durable<PostgresCheckpointPlace>;
#define KRMX_DURABLE_POSTGRES , krmx::testing::PostgresStore
// The contract runs on group commit: the same code, without waiting for a flush per append.
using PostgresEventStoreFixtures = std::tuple<PostgresGroupCommitStore>;
using PostgresCheckpointStoreFixtures = std::tuple<PostgresCheckpoints>;
#else
#define KRMX_DURABLE_POSTGRES
using PostgresEventStoreFixtures = std::tuple<>;
using PostgresCheckpointStoreFixtures = std::tuple<>;
#endif

/// Every event store variant, for TEMPLATE_LIST_TEST_CASE.
using EventStoreFixtures = decltype(std::tuple_cat(std::tuple<MemoryStore>{}, SqliteEventStoreFixtures{},
                                                   PostgresEventStoreFixtures{}));
/// Every checkpoint store, for TEMPLATE_LIST_TEST_CASE.
using CheckpointStoreFixtures = decltype(std::tuple_cat(
    std::tuple<MemoryCheckpoints>{}, SqliteCheckpointStoreFixtures{}, PostgresCheckpointStoreFixtures{}));

}  // namespace krmx::testing

/// The event stores with their default options, for TEMPLATE_TEST_CASE.
#define KRMX_DURABLE_STORES krmx::testing::MemoryStore KRMX_DURABLE_SQLITE KRMX_DURABLE_POSTGRES

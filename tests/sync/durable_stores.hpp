#pragma once
// The stores a durable StreamDomain is tested on, each with `open()` (the store) and `reopen()` (a restart:
// only what reached the store survives): memory, SQLite (KRMX_TEST_SQLITE) and PostgreSQL
// (KRMX_TEST_POSTGRES, on the test executable's throw-away server). KRMX_DURABLE_STORES lists them for
// TEMPLATE_TEST_CASE.
#include <memory>

#include <krmx/store/memory_event_store.hpp>
#if defined(KRMX_TEST_SQLITE)
#include <krmx/store/sqlite_event_store.hpp>

#include "temp_dir.hpp"
#endif
#if defined(KRMX_TEST_POSTGRES)
#include <krmx/store/postgres_event_store.hpp>

#include "postgres_server.hpp"
#endif

namespace krmx::testing {

struct MemoryStore {
    std::unique_ptr<krmx::MemoryEventStore> store = std::make_unique<krmx::MemoryEventStore>();
    krmx::MemoryEventStore& open() { return *store; }
    void reopen() {}  // a memory store lives as long as the process
};

#if defined(KRMX_TEST_SQLITE)
struct SqliteStore {
    TempDir dir;
    std::unique_ptr<krmx::SqliteEventStore> store;
    SqliteStore() { reopen(); }
    krmx::SqliteEventStore& open() { return *store; }
    // A restart: the file is closed and opened again, so only what reached it survives.
    void reopen() {
        store.reset();
        store = std::make_unique<krmx::SqliteEventStore>(dir.path() / "game.sqlite");
    }
};
#define KRMX_DURABLE_SQLITE , krmx::testing::SqliteStore
#else
#define KRMX_DURABLE_SQLITE
#endif

#if defined(KRMX_TEST_POSTGRES)
struct PostgresStore {
    krmx::PostgresOptions database{.connection = shared_postgres().conninfo(),
                                   .schema = unique_postgres_schema("durable")};
    std::unique_ptr<krmx::PostgresEventStore> store;
    PostgresStore() { reopen(); }
    krmx::PostgresEventStore& open() { return *store; }
    // A restart: the connections are closed and opened again, so only what was committed survives.
    void reopen() {
        store.reset();
        store = std::make_unique<krmx::PostgresEventStore>(database);
    }
};
#define KRMX_DURABLE_POSTGRES , krmx::testing::PostgresStore
#else
#define KRMX_DURABLE_POSTGRES
#endif

}  // namespace krmx::testing

#define KRMX_DURABLE_STORES krmx::testing::MemoryStore KRMX_DURABLE_SQLITE KRMX_DURABLE_POSTGRES

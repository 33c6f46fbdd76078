// Your own store keeps krmx's contracts: the very suites krmx runs on its memory, SQLite and PostgreSQL
// stores, run here on the SQLite stores (the memory ones where SQLite is not built) as you would run them
// on yours. Copy it, and put your store in the fixtures: each case makes a fresh fixture, `open()` gives the
// store, `reopen()` restarts it on the same data, `close()` closes it; a lock fixture gives two providers
// that share their locks. Prints each report; exits 1 when a case failed (or the filter named none).
//
//   store_contract            every case of every suite
//   store_contract restart    only the cases whose name contains "restart"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>

#include <krmx/testing/checkpoint_store_contract.hpp>
#include <krmx/testing/event_store_contract.hpp>
#include <krmx/testing/lock_provider_contract.hpp>

#if defined(KRMX_EXAMPLE_SQLITE)
#include <krmx/models/sqlite_lock_provider.hpp>
#include <krmx/store/sqlite_checkpoint_store.hpp>
#include <krmx/store/sqlite_event_store.hpp>
#else
#include <krmx/models/lock_provider.hpp>
#include <krmx/store/checkpoint_store.hpp>
#include <krmx/store/memory_event_store.hpp>
#endif

// A fresh directory, removed with everything in it: every fixture's store gets a place of its own.
class TempDir {
  public:
    TempDir()
        : path_(std::filesystem::temp_directory_path() /
                ("krmx-contract-" + std::to_string(std::random_device{}()))) {
        std::filesystem::create_directories(path_);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
};

#if defined(KRMX_EXAMPLE_SQLITE)
struct MyEventStore {
    static constexpr const char* name = "krmx::SqliteEventStore";
    TempDir dir;
    std::unique_ptr<krmx::SqliteEventStore> store;

    MyEventStore() { reopen(); }
    krmx::SqliteEventStore& open() {
        if (!store) reopen();
        return *store;
    }
    void reopen() {
        store.reset();  // closed before it opens again, as in a restart
        store = std::make_unique<krmx::SqliteEventStore>(dir.path() / "events.sqlite");
    }
    void close() { store.reset(); }
};

struct MyCheckpointStore {
    static constexpr const char* name = "krmx::SqliteCheckpointStore";
    TempDir dir;
    std::unique_ptr<krmx::SqliteCheckpointStore> store;

    MyCheckpointStore() { reopen(); }
    krmx::SqliteCheckpointStore& open() {
        if (!store) reopen();
        return *store;
    }
    void reopen() {
        store.reset();
        store = std::make_unique<krmx::SqliteCheckpointStore>(dir.path() / "checkpoints.sqlite");
    }
    void close() { store.reset(); }
};

// Two providers on one lock file, as two processes would have.
struct MyLockProvider {
    static constexpr const char* name = "krmx::SqliteLockProvider";
    TempDir dir;
    krmx::SqliteLockProvider a{dir.path() / "locks.sqlite"};
    krmx::SqliteLockProvider b{dir.path() / "locks.sqlite"};
    krmx::SqliteLockProvider& first() { return a; }
    krmx::SqliteLockProvider& second() { return b; }
};
#else
// A memory store keeps its data as long as the process: a restart keeps everything.
struct MyEventStore {
    static constexpr const char* name = "krmx::MemoryEventStore";
    std::unique_ptr<krmx::MemoryEventStore> store = std::make_unique<krmx::MemoryEventStore>();
    krmx::MemoryEventStore& open() {
        if (!store) store = std::make_unique<krmx::MemoryEventStore>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};

struct MyCheckpointStore {
    static constexpr const char* name = "krmx::MemoryCheckpointStore";
    std::unique_ptr<krmx::MemoryCheckpointStore> store = std::make_unique<krmx::MemoryCheckpointStore>();
    krmx::MemoryCheckpointStore& open() {
        if (!store) store = std::make_unique<krmx::MemoryCheckpointStore>();
        return *store;
    }
    void reopen() {}
    void close() { store.reset(); }
};

// The threads of one process share one provider.
struct MyLockProvider {
    static constexpr const char* name = "krmx::InProcessLockProvider";
    krmx::InProcessLockProvider provider;
    krmx::InProcessLockProvider& first() { return provider; }
    krmx::InProcessLockProvider& second() { return provider; }
};
#endif

int main(int argc, char** argv) {
    const krmx::testing::ContractOptions options{.filter = argc > 1 ? argv[1] : ""};
    const krmx::testing::ContractReport reports[] = {
        krmx::testing::event_store_contract<MyEventStore>(options),
        krmx::testing::checkpoint_store_contract<MyCheckpointStore>(options),
        krmx::testing::lock_provider_contract<MyLockProvider>(options),
    };
    bool ran = false;
    bool ok = true;
    for (const auto& report : reports) {
        std::fputs(report.str().c_str(), stdout);
        if (report.cases().empty()) continue;  // the filter names no case of this suite
        ran = true;
        ok = ok && report.ok();
    }
    return ran && ok ? 0 : 1;
}

// The bookstore: lend and return books through a write model (locked per book), read the available copies
// through a checkpointed read model on SQLite, and show that a restarted read model resumes from its
// checkpoint instead of replaying everything. Exits 0 when every step did what it should.
//
// `bookstore --postgres [connection]` runs the very same code on PostgreSQL instead (events, checkpoints
// and locks in a fresh schema, dropped at the end); the connection defaults to KRMX_POSTGRES_URL.

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include <krmx/models/lock_provider.hpp>
#include <krmx/models/read_model.hpp>
#include <krmx/models/read_model_runner.hpp>
#include <krmx/models/write_model.hpp>
#include <krmx/store/sqlite_checkpoint_store.hpp>
#include <krmx/store/sqlite_event_store.hpp>
#if defined(KRMX_BOOKSTORE_POSTGRES)
#include <krmx/models/postgres_lock_provider.hpp>
#include <krmx/store/postgres_checkpoint_store.hpp>
#include <krmx/store/postgres_event_store.hpp>
#endif

#include "bookstore/bookstore.hpp"

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "  ok    " : "  FAIL  ") << what << "\n";
    if (!ok) ++failures;
}

// Where the bookstore keeps its events, checkpoints and locks. Everything below is written once against
// a backend and runs unchanged on either.
struct SqliteBackend {
    using Store = krmx::SqliteEventStore;
    using Checkpoints = krmx::SqliteCheckpointStore;
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("krmx-bookstore-example-" + std::to_string(std::random_device{}()));
    krmx::InProcessLockProvider locks;  // one process: in-process locks are enough
    SqliteBackend() { std::filesystem::create_directories(dir); }
    ~SqliteBackend() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    [[nodiscard]] Store store() const { return Store{dir / "events.sqlite"}; }
    [[nodiscard]] Checkpoints checkpoints() const { return Checkpoints{dir / "events.sqlite"}; }
};

#if defined(KRMX_BOOKSTORE_POSTGRES)
struct PostgresBackend {
    using Store = krmx::PostgresEventStore;
    using Checkpoints = krmx::PostgresCheckpointStore;
    krmx::PostgresOptions database;
    krmx::PostgresLockProvider locks;  // across processes and machines
    explicit PostgresBackend(std::string connection)
        : database{.connection = std::move(connection),
                   .schema = "bookstore_example_" + std::to_string(std::random_device{}())},
          locks{database} {}
    ~PostgresBackend() {
        try {
            krmx::detail::PgConnection{krmx::detail::postgres_conninfo(database)}.exec(
                "DROP SCHEMA IF EXISTS " + database.schema + " CASCADE");
        } catch (...) {
            // Leaves an example schema behind; nothing else.
        }
    }
    [[nodiscard]] Store store() const { return Store{database}; }
    [[nodiscard]] Checkpoints checkpoints() const { return Checkpoints{database}; }
};
#endif

// One run of the "available books" read model, as a separate process would do it after a restart.
template <class Backend>
bookstore::Available run_available(const Backend& backend, krmx::RunReport& report) {
    auto store = backend.store();
    auto checkpoints = backend.checkpoints();
    krmx::ReadModelRunner<bookstore::Available, typename Backend::Store> runner{bookstore::available_model(),
                                                                                store};
    runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::every_n_events(100));
    report = runner.catch_up();
    return runner.state();
}

template <class Backend>
void run(Backend& backend) {
    using namespace bookstore;
    auto& locks = backend.locks;
    {
        {
            auto store = backend.store();
            std::cout << "stocking the shelves\n";
            for (const auto& book : {BookAdded{"1", "Dune", "Frank Herbert", 24.99, 2},
                                     BookAdded{"2", "Neuromancer", "William Gibson", 34.99, 1}}) {
                const auto added =
                    book_write_model(book.book_id)
                        .use_lock(locks)
                        .with_source(store)
                        .handle([&](krmx::WriteContext<Book>& w) { w.emit(book_added(book)); });
                expect(added.appended(), "added book " + book.book_id);
            }

            std::cout << "lending book 1 until no copy is left\n";
            auto book1 = book_write_model("1").use_lock(locks).with_source(store);
            for (const char* user : {"alice", "bob", "carol"}) {
                const auto lent = book1.handle([&](krmx::WriteContext<Book>& w) {
                    w.emit(book_lent(Lending{"1", user}));
                });
                std::cout << "    " << user << ": " << krmx::to_string(lent.status)
                          << (lent.refused() ? " (" + lent.reason + ")" : std::string{}) << "\n";
            }
            const auto returned = book1.handle([](krmx::WriteContext<Book>& w) {
                w.emit(book_returned(Lending{"1", "alice"}));
            });
            expect(returned.appended() && returned.state.available() == 1, "alice returned book 1");
        }

        std::cout << "first run of the read model\n";
        krmx::RunReport first;
        const auto available = run_available(backend, first);
        expect(available == Available{{{"1", 1}, {"2", 1}}}, "available: book 1 = 1, book 2 = 1");
        expect(!first.restored && first.events == 5, "replayed all 5 events from the start");

        {
            auto store = backend.store();
            const auto lent = book_write_model("2").use_lock(locks).with_source(store).handle(
                [](krmx::WriteContext<Book>& w) {
                    w.emit(book_lent(Lending{"2", "dave"}));
                });
            expect(lent.appended(), "dave borrowed book 2 while the read model was down");
        }

        std::cout << "second run, after a restart\n";
        krmx::RunReport second;
        const auto resumed = run_available(backend, second);
        expect(second.restored && second.events == 1, "restored the checkpoint and read only the new event");
        expect(resumed == Available{{{"1", 1}, {"2", 0}}}, "available: book 1 = 1, book 2 = 0");
    }
}

}  // namespace

int main(int argc, char** argv) {
    const bool postgres = argc >= 2 && std::string{argv[1]} == "--postgres";
    try {
        if (postgres) {
#if defined(KRMX_BOOKSTORE_POSTGRES)
            PostgresBackend backend{argc >= 3 ? argv[2] : ""};
            std::cout << "on PostgreSQL, schema " << backend.database.schema << "\n";
            run(backend);
#else
            std::cerr << "error: this bookstore was built without PostgreSQL (libpq not found)\n";
            return EXIT_FAILURE;
#endif
        } else {
            SqliteBackend backend;
            run(backend);
        }
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        ++failures;
    }
    std::cout << (failures == 0 ? "all good\n" : "something went wrong\n");
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

// The bookstore: lend and return books through a write model (locked per book), read the available copies
// through a checkpointed read model on SQLite, and show that a restarted read model resumes from its
// checkpoint instead of replaying everything. Exits 0 when every step did what it should.

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include <krmx/models/lock_provider.hpp>
#include <krmx/models/read_model.hpp>
#include <krmx/models/write_model.hpp>
#include <krmx/store/sqlite_checkpoint_store.hpp>
#include <krmx/store/sqlite_event_store.hpp>

#include "bookstore/bookstore.hpp"

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "  ok    " : "  FAIL  ") << what << "\n";
    if (!ok) ++failures;
}

using Store = krmx::SqliteEventStore;

// One run of the "available books" read model, as a separate process would do it after a restart.
bookstore::Available run_available(const std::filesystem::path& dir, krmx::RunReport& report) {
    Store store{dir / "events.sqlite"};
    krmx::SqliteCheckpointStore checkpoints{dir / "events.sqlite"};
    krmx::ReadModelRunner<bookstore::Available, Store> runner{bookstore::available_model(), store};
    runner.use_checkpoints(checkpoints, krmx::CheckpointStrategy::every_n_events(100));
    report = runner.catch_up();
    return runner.state();
}

}  // namespace

int main() {
    using namespace bookstore;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("krmx-bookstore-example-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    try {
        krmx::InProcessLockProvider locks;
        {
            Store store{dir / "events.sqlite"};
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
        const auto available = run_available(dir, first);
        expect(available == Available{{{"1", 1}, {"2", 1}}}, "available: book 1 = 1, book 2 = 1");
        expect(!first.restored && first.events == 5, "replayed all 5 events from the start");

        {
            Store store{dir / "events.sqlite"};
            const auto lent = book_write_model("2").use_lock(locks).with_source(store).handle(
                [](krmx::WriteContext<Book>& w) {
                    w.emit(book_lent(Lending{"2", "dave"}));
                });
            expect(lent.appended(), "dave borrowed book 2 while the read model was down");
        }

        std::cout << "second run, after a restart\n";
        krmx::RunReport second;
        const auto resumed = run_available(dir, second);
        expect(second.restored && second.events == 1, "restored the checkpoint and read only the new event");
        expect(resumed == Available{{{"1", 1}, {"2", 0}}}, "available: book 1 = 1, book 2 = 0");
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        ++failures;
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    std::cout << (failures == 0 ? "all good\n" : "something went wrong\n");
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

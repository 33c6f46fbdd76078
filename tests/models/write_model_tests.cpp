// Write models over the bookstore: lock, catch up, decide, append with the expected revision, unlock.

#include <stdexcept>

#include "catch.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/models/write_model.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "models_test_support.hpp"

using namespace bookstore;
using krmx::MemoryEventStore;

namespace {
void lend(krmx::WriteContext<Book>& w, std::string user) {
    w.emit(book_lent(Lending{"1", std::move(user)}));
}
}  // namespace

TEST_CASE("a write model materializes its book from the stored history", "[models][write]") {
    MemoryEventStore store;
    models_test::append_canonical_history(store);
    krmx::InProcessLockProvider locks;
    const auto result =
        book_write_model("1").use_lock(locks).with_source(store).handle([](krmx::WriteContext<Book>& w) {
            CHECK(w.state().available() == 9);
            CHECK(w.revision() == 4);  // added, price, lent, lent, returned
        });
    CHECK(result.status == krmx::WriteStatus::nothing_emitted);
    CHECK(store.head_position() == models_test::canonical_history_size);
}

TEST_CASE("lending until no copy is left refuses with a clear reason and appends nothing",
          "[models][write]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 2}));
    krmx::InProcessLockProvider locks;
    auto model = book_write_model("1").use_lock(locks);
    CHECK(model.with_source(store).handle([](auto& w) { lend(w, "alice"); }).appended());
    const auto second = model.with_source(store).handle([](auto& w) { lend(w, "bob"); });
    CHECK(second.appended());
    CHECK(second.state.available() == 0);
    const auto head = store.head_position();
    const auto third = model.with_source(store).handle([](auto& w) { lend(w, "carol"); });
    CHECK(third.refused());
    CHECK(third.reason == "no copies of book '1' are left to lend");
    CHECK(store.head_position() == head);
    CHECK_FALSE(locks.is_held("book-1"));
}

TEST_CASE("the block sees its own emitted events, and a refusal midway appends none of them",
          "[models][write]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 3}));
    const auto result = book_write_model("1").with_source(store).handle([](krmx::WriteContext<Book>& w) {
        while (w.state().available() > 0) lend(w, "alice");  // would loop forever without its own changes
        CHECK(w.emitted().size() == 3);
        lend(w, "bob");  // refused: the whole block is
    });
    CHECK(result.refused());
    CHECK(result.state.available() == 3);  // as read from the store
    CHECK(store.head_position() == 1);
}

TEST_CASE("a block that throws appends nothing and releases the lock", "[models][write]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 3}));
    krmx::InProcessLockProvider locks;
    auto model = book_write_model("1").use_lock(locks);
    CHECK_THROWS_WITH(model.with_source(store).handle([&](auto& w) {
        lend(w, "alice");
        CHECK(locks.is_held("book-1"));
        throw std::runtime_error("payment service down");
    }),
                      "payment service down");
    CHECK_FALSE(locks.is_held("book-1"));
    CHECK(store.head_position() == 1);
    CHECK(model.with_source(store).handle([](auto& w) { lend(w, "alice"); }).appended());
}

TEST_CASE("appends use the expected revision of the stream as read", "[models][write]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 3}));
    // A writer that ignores the lock sneaks in between catch-up and append: the append must fail.
    CHECK_THROWS_AS(book_write_model("1").with_source(store).handle([&](auto& w) {
        lend(w, "alice");
        models_test::append(store, "1", book_lent(Lending{"1", "mallory"}));
    }),
                    krmx::WrongExpectedRevision);
    CHECK(store.head_position() == 2);
    const auto result = book_write_model("1").with_source(store).handle([](auto& w) { lend(w, "alice"); });
    CHECK(result.append->first_revision == 2);
}

TEST_CASE("a new entity is appended with the expectation that its stream does not exist", "[models][write]") {
    MemoryEventStore store;
    const auto result = book_write_model("9").with_source(store).handle([](krmx::WriteContext<Book>& w) {
        w.emit(book_added(BookAdded{"9", "New", "Author", 5, 1}));
    });
    REQUIRE(result.appended());
    CHECK(result.append->first_revision == 0);
    CHECK(result.state.exists);
}

TEST_CASE("write models with separate lock providers do overlap (the detector works)",
          "[models][write][concurrency]") {
    MemoryEventStore store;
    models_test::append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 100}));
    krmx::InProcessLockProvider a, b, c, d;
    const auto run = models_test::run_concurrent_lends(store, {a, b, c, d});
    CHECK(run.overlapped);
    CHECK(run.appended + run.conflicts == 20);
}

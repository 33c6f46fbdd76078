#pragma once
// Shared by the models tests: the canonical bookstore history, the projection model of both projection
// targets, write models lending at once under locks, a temporary directory, waiting with a limit.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include "temp_dir.hpp"

#include "bookstore/bookstore.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/models/read_model.hpp"
#include "krmx/models/sql_value.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/memory_event_store.hpp"

namespace models_test {

template <class Store, class P>
void append(Store& store, std::string_view book_id, const krmx::TypedEvent<P>& event) {
    (void)store.append(bookstore::stream_of(book_id), krmx::ExpectedRevision::any(),
                       bookstore::catalog().encode(event));
}

/// Add book 1 at 29.99 with 10 copies, add book 2 at 34.99 with 5, change book 1 to 24.99, lend book 1,
/// add book 3, remove book 3, lend book 1, return book 1.
template <class Store>
void append_canonical_history(Store& store) {
    using namespace bookstore;
    append(store, "1", book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 10}));
    append(store, "2", book_added(BookAdded{"2", "Neuromancer", "William Gibson", 34.99, 5}));
    append(store, "1", price_changed(PriceChanged{"1", 24.99}));
    append(store, "1", book_lent(Lending{"1", "alice"}));
    append(store, "3", book_added(BookAdded{"3", "Snow Crash", "Neal Stephenson", 19.99, 2}));
    append(store, "3", book_removed(BookRef{"3"}));
    append(store, "1", book_lent(Lending{"1", "bob"}));
    append(store, "1", book_returned(Lending{"1", "alice"}));
}
inline constexpr krmx::Position canonical_history_size = 8;
/// The rows of the `available` projection table (book_id, copies) after the canonical history, as both
/// projection targets' tests write them.
inline const std::vector<krmx::SqlRow> canonical_available_rows{{std::string{"1"}, std::int64_t{9}},
                                                                {std::string{"2"}, std::int64_t{5}}};

/// A projection of available copies into the table `available`, written by the reducer inside the
/// checkpoint's transaction; the same model for SqliteProjection and PostgresProjection, whose statements
/// differ only in their parameter marker (`mark`: "?" for SQLite, "$" for PostgreSQL). Throws at the event
/// at position `*fail_at`, as a crash would.
template <class Projection>
krmx::ReadModel<krmx::NoState> available_table(Projection& db, std::string mark,
                                               std::atomic<int>* fail_at = nullptr,
                                               std::uint32_t revision = 1) {
    using namespace bookstore;
    return krmx::ReadModel<krmx::NoState>{"book.available_table", revision, catalog()}.reduce(
        [&db, fail_at, mark](const krmx::CatalogEvent& e) {
            if (fail_at && static_cast<int>(e.position()) == fail_at->load())
                throw std::runtime_error("crash");
            if (const auto* added = e.payload_if(book_added)) {
                db.execute("INSERT INTO available (book_id, copies) VALUES (" + mark + "1, " + mark + "2)",
                           {added->book_id, std::int64_t{added->copies}});
            } else if (const auto* lent = e.payload_if(book_lent)) {
                db.execute("UPDATE available SET copies = copies - 1 WHERE book_id = " + mark + "1",
                           {lent->book_id});
            } else if (const auto* returned = e.payload_if(book_returned)) {
                db.execute("UPDATE available SET copies = copies + 1 WHERE book_id = " + mark + "1",
                           {returned->book_id});
            } else if (const auto* removed = e.payload_if(book_removed)) {
                db.execute("DELETE FROM available WHERE book_id = " + mark + "1", {removed->book_id});
            }
        });
}

/// The rows of that table, in book order.
template <class Projection>
std::vector<krmx::SqlRow> available_rows(Projection& db) {
    return db.query("SELECT book_id, copies FROM available ORDER BY book_id");
}

/// What four threads lending book 1 through write models did; `overlapped`: two blocks ever ran at once.
struct OverlapRun {
    bool overlapped = false;
    int appended = 0;
    int conflicts = 0;
};

/// Four threads lend book 1 of `store` five times each, thread t locking through `providers[t % size]`.
inline OverlapRun run_concurrent_lends(krmx::MemoryEventStore& store,
                                       const std::vector<krmx::LockProviderRef>& providers) {
    std::atomic<int> inside{0};
    std::atomic<bool> overlapped{false};
    std::atomic<int> appended{0};
    std::atomic<int> conflicts{0};
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                auto model = bookstore::book_write_model("1").use_lock(
                    providers[static_cast<std::size_t>(t) % providers.size()]);
                for (int i = 0; i < 5; ++i) {
                    try {
                        const auto result =
                            model.with_source(store).handle([&](krmx::WriteContext<bookstore::Book>& w) {
                                if (inside.fetch_add(1) > 0) overlapped = true;
                                std::this_thread::sleep_for(std::chrono::milliseconds{2});
                                w.emit(bookstore::book_lent(
                                    bookstore::Lending{"1", "user-" + std::to_string(t)}));
                                inside.fetch_sub(1);
                            });
                        if (result.appended()) ++appended;
                    } catch (const krmx::WrongExpectedRevision&) {
                        ++conflicts;
                    }
                }
            });
        }
    }
    return {overlapped.load(), appended.load(), conflicts.load()};
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::milliseconds{5000}) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    return true;
}

using krmx::testing::TempDir;

}  // namespace models_test

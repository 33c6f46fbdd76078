#pragma once
// The bookstore of Krescent's documentation, as shared domain code: events, the event catalog, two read
// models (the listing, a plain reducer; the available copies, a StreamModel) and a write model for one book
// (lend and return, refused when no copy is left). The example and the tests include this file.
//
// Every event of a book goes to the book's stream, "book-<id>".

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <krmx/models/event_catalog.hpp>
#include <krmx/models/read_model.hpp>
#include <krmx/models/write_model.hpp>
#include <krmx/stream/stream_model.hpp>

namespace bookstore {

struct BookAdded {
    std::string book_id;
    std::string title;
    std::string author;
    double price = 0;
    int copies = 0;
    friend bool operator==(const BookAdded&, const BookAdded&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(BookAdded, book_id, title, author, price, copies)

struct PriceChanged {
    std::string book_id;
    double price = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PriceChanged, book_id, price)

/// The payload of events about a book and nothing else (removed, a copy added or removed).
struct BookRef {
    std::string book_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(BookRef, book_id)

struct Lending {
    std::string book_id;
    std::string user_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Lending, book_id, user_id)

/// Schema version 2: the payload's shape changed once (see book_added_v1_to_v2).
inline constexpr krmx::EventType<BookAdded> book_added{"book.added", 2};
inline constexpr krmx::EventType<PriceChanged> price_changed{"book.price_changed"};
inline constexpr krmx::EventType<BookRef> book_removed{"book.removed"};
inline constexpr krmx::EventType<Lending> book_lent{"book.lent"};
inline constexpr krmx::EventType<Lending> book_returned{"book.returned"};
inline constexpr krmx::EventType<BookRef> copy_added{"book.copy_added"};
inline constexpr krmx::EventType<BookRef> copy_removed{"book.copy_removed"};

[[nodiscard]] inline std::string stream_of(std::string_view book_id) {
    return "book-" + std::string{book_id};
}

/// Schema 1 of book.added had `id` and `price_cents`; schema 2 (current) has `book_id` and `price`.
inline nlohmann::json book_added_v1_to_v2(nlohmann::json payload) {
    payload["book_id"] = payload.at("id");
    payload.erase("id");
    payload["price"] = payload.at("price_cents").get<double>() / 100.0;
    payload.erase("price_cents");
    return payload;
}

/// The catalog, built on first use (safe from any translation unit).
inline const krmx::EventCatalog& catalog() {
    static const auto c = krmx::EventCatalog{"bookstore", 1}
                              .add(book_added)
                              .add(price_changed)
                              .add(book_removed)
                              .add(book_lent)
                              .add(book_returned)
                              .add(copy_added)
                              .add(copy_removed)
                              .upcast(book_added, &book_added_v1_to_v2);
    return c;
}

// ---- read model: the listing (a plain reducer) ----

struct ListedBook {
    std::string title;
    std::string author;
    double price = 0;
    friend bool operator==(const ListedBook&, const ListedBook&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ListedBook, title, author, price)

struct Listing {
    std::map<std::string, ListedBook> books;
    friend bool operator==(const Listing&, const Listing&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Listing, books)

inline void reduce_listing(Listing& listing, const krmx::CatalogEvent& event) {
    if (const auto* added = event.payload_if(book_added)) {
        listing.books[added->book_id] = ListedBook{added->title, added->author, added->price};
    } else if (const auto* changed = event.payload_if(price_changed)) {
        if (auto found = listing.books.find(changed->book_id); found != listing.books.end()) {
            found->second.price = changed->price;
        }
    } else if (const auto* removed = event.payload_if(book_removed)) {
        listing.books.erase(removed->book_id);
    }
}

inline krmx::ReadModel<Listing> listing_model(std::uint32_t revision = 1) {
    return krmx::ReadModel<Listing>{"book.listing", revision, catalog()}.reduce(&reduce_listing);
}

// ---- read model: available copies (a StreamModel, the same kind of model a game server runs) ----

struct Available {
    std::map<std::string, int> copies;
    friend bool operator==(const Available&, const Available&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Available, copies)

inline const krmx::StreamModel<Available>& available_stream_model() {
    static const auto m =
        krmx::StreamModel<Available>{}
            .when(book_added,
                  [](Available& s, std::string_view, const BookAdded& e) { s.copies[e.book_id] = e.copies; })
            .when(book_removed,
                  [](Available& s, std::string_view, const BookRef& e) { s.copies.erase(e.book_id); })
            .when(book_lent, [](Available& s, std::string_view, const Lending& e) { --s.copies[e.book_id]; })
            .when(book_returned,
                  [](Available& s, std::string_view, const Lending& e) { ++s.copies[e.book_id]; })
            .when(copy_added, [](Available& s, std::string_view, const BookRef& e) { ++s.copies[e.book_id]; })
            .when(copy_removed,
                  [](Available& s, std::string_view, const BookRef& e) { --s.copies[e.book_id]; });
    return m;
}

inline krmx::ReadModel<Available> available_model(std::uint32_t revision = 1) {
    return krmx::ReadModel<Available>::reducing("book.available", revision, catalog(),
                                                available_stream_model());
}

// ---- write model: one book ----

struct Book {
    bool exists = false;
    int copies = 0;
    int lent = 0;
    [[nodiscard]] int available() const noexcept { return copies - lent; }
};

inline const krmx::StreamModel<Book>& book_stream_model() {
    static const auto m =
        krmx::StreamModel<Book>{}
            .when(
                book_added,
                [](const Book& b, std::string_view, const BookAdded&) {
                    return b.exists ? krmx::refuse("the book exists already") : krmx::allow();
                },
                [](Book& b, std::string_view, const BookAdded& e) {
                    b.exists = true;
                    b.copies = e.copies;
                })
            .when(book_removed, [](Book& b, std::string_view, const BookRef&) { b.exists = false; })
            .when(
                book_lent,
                [](const Book& b, std::string_view, const Lending& e) {
                    if (!b.exists) return krmx::refuse("book '" + e.book_id + "' is not in the store");
                    if (b.available() <= 0)
                        return krmx::refuse("no copies of book '" + e.book_id + "' are left to lend");
                    return krmx::allow();
                },
                [](Book& b, std::string_view, const Lending&) { ++b.lent; })
            .when(
                book_returned,
                [](const Book& b, std::string_view, const Lending& e) {
                    return b.lent > 0 ? krmx::allow()
                                      : krmx::refuse("no copy of book '" + e.book_id + "' is lent");
                },
                [](Book& b, std::string_view, const Lending&) { --b.lent; })
            .when(copy_added, [](Book& b, std::string_view, const BookRef&) { ++b.copies; })
            .when(copy_removed, [](Book& b, std::string_view, const BookRef&) { --b.copies; });
    return m;
}

/// The write model of one book, on the book's stream.
inline krmx::WriteModel<Book> book_write_model(std::string_view book_id) {
    return krmx::WriteModel<Book>::reducing("book.write", catalog(), book_stream_model())
        .on_stream(stream_of(book_id));
}

}  // namespace bookstore

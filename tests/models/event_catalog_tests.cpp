// The event catalog: typed decoding, unknown types and bad payloads reported, upcasting old shapes.

#include <string>
#include <vector>

#include "catch.hpp"
#include "krmx/models/event_catalog.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "krmx/sync/durable.hpp"
#include "krmx/sync/stream_domain.hpp"
#include "krmx/testing/hub.hpp"
#include "models_test_support.hpp"

using namespace bookstore;
using nlohmann::json;

namespace {
krmx::RecordedEvent record_of(std::string type, std::optional<json> payload, json metadata = json::object()) {
    krmx::RecordedEvent r;
    r.position = 1;
    r.stream = "book-1";
    r.type = std::move(type);
    r.payload = std::move(payload);
    r.metadata = std::move(metadata);
    return r;
}
}  // namespace

TEST_CASE("an encoded event decodes back to its typed payload", "[models][catalog]") {
    const auto encoded = catalog().encode(book_lent(Lending{"1", "alice"}), "desk");
    CHECK(encoded.type == "book.lent");
    CHECK(encoded.metadata["schema"] == 1);
    auto record = record_of(encoded.type, encoded.payload, encoded.metadata);
    const auto decoded = catalog().decode(record);
    REQUIRE(decoded.decoded());
    const auto* lending = decoded.event.payload_if(book_lent);
    REQUIRE(lending != nullptr);
    CHECK(lending->user_id == "alice");
    CHECK(decoded.event.payload_if(book_returned) == nullptr);  // same payload type, other event type
    CHECK(decoded.event.is(book_lent));
}

TEST_CASE("an event type outside the catalog is reported as unknown, not dropped and not thrown",
          "[models][catalog]") {
    const auto decoded = catalog().decode(record_of("book.stolen", json{{"book_id", "1"}}));
    CHECK(decoded.status == krmx::DecodeStatus::unknown_type);
    CHECK(decoded.reason.find("book.stolen") != std::string::npos);
    CHECK(decoded.event.record().type == "book.stolen");
}

TEST_CASE("a payload that does not fit is reported with the path of the misfit", "[models][catalog]") {
    const auto decoded =
        catalog().decode(record_of("book.price_changed", json{{"book_id", "1"}, {"price", "cheap"}}));
    CHECK(decoded.status == krmx::DecodeStatus::invalid_payload);
    CHECK(decoded.reason == "payload.price: expected number, got string");
}

TEST_CASE("an old payload shape is upcast to the current one at decode time", "[models][catalog]") {
    CHECK(catalog().schema_version("book.added") == 2);
    const json v1 = {
        {"id", "7"}, {"title", "Dune"}, {"author", "Frank Herbert"}, {"price_cents", 2999}, {"copies", 3}};
    SECTION("an event without a schema version is schema 1") {
        const auto decoded = catalog().decode(record_of("book.added", std::optional<json>{v1}));
        REQUIRE(decoded.decoded());
        const auto* added = decoded.event.payload_if(book_added);
        REQUIRE(added != nullptr);
        CHECK(added->book_id == "7");
        CHECK(added->price == Approx(29.99));
        CHECK(added->copies == 3);
    }
    SECTION("an event of the current schema is not upcast") {
        const auto encoded = catalog().encode(book_added(BookAdded{"8", "t", "a", 1.5, 1}));
        CHECK(encoded.metadata["schema"] == 2);
        const auto decoded = catalog().decode(record_of("book.added", encoded.payload, encoded.metadata));
        REQUIRE(decoded.decoded());
        CHECK(decoded.event.payload_if(book_added)->price == 1.5);
    }
    SECTION("a schema newer than the catalog knows is reported, not guessed") {
        const auto decoded =
            catalog().decode(record_of("book.added", std::optional<json>{v1}, json{{"schema", 3}}));
        CHECK(decoded.status == krmx::DecodeStatus::invalid_payload);
        CHECK(decoded.reason.find("schema version 3") != std::string::npos);
    }
    SECTION("an upcaster that fails is reported as an invalid payload") {
        const auto decoded = catalog().decode(record_of("book.added", json{{"title", "no id"}}));
        CHECK(decoded.status == krmx::DecodeStatus::invalid_payload);
        CHECK(decoded.reason.find("upcasting 'book.added' failed") != std::string::npos);
    }
}

TEST_CASE("adding an event type twice to a catalog is an error", "[models][catalog]") {
    krmx::EventCatalog c{"c", 1};
    c.add(book_lent);
    CHECK_THROWS_AS(c.add(book_lent), krmx::CatalogError);
    CHECK_THROWS_AS(c.upcast(book_added, [](json p) { return p; }), krmx::CatalogError);
    CHECK_THROWS_AS((void)c.encode(book_removed(BookRef{"1"})), krmx::CatalogError);
}

TEST_CASE("a type's schema version is declared where the type is; upcasters cannot outnumber its versions",
          "[models][catalog]") {
    // book.lent is at version 1: there is no older version to upcast from.
    krmx::EventCatalog c{"c", 1};
    c.add(book_lent).add(book_added);
    CHECK_THROWS_WITH(c.upcast(book_lent, [](json p) { return p; }),
                      Catch::Contains("declared at schema version 1, so it takes at most 0 upcasters") &&
                          Catch::Contains(R"(krmx::EventType<Payload>{"book.lent", 2})"));
    c.upcast(book_added, &book_added_v1_to_v2);
    CHECK_THROWS_AS(c.upcast(book_added, [](json p) { return p; }), krmx::CatalogError);  // a third version?
    // Three versions, one step: versions 2 and 3 read, version 1 is refused by name, never guessed.
    static constexpr krmx::EventType<Lending> lent_v3{"book.lent", 3};
    krmx::EventCatalog three{"three", 1};
    three.add(lent_v3).upcast(lent_v3, [](json p) {
        p["user_id"] = p.at("user");
        p.erase("user");
        return p;
    });
    CHECK(three.schema_version("book.lent") == 3);
    const auto v2 = three.decode(record_of("book.lent", json{{"book_id", "1"}, {"user", "ann"}}, json{{"schema", 2}}));
    REQUIRE(v2.decoded());
    CHECK(v2.event.payload_if(lent_v3)->user_id == "ann");
    const auto v1 = three.decode(record_of("book.lent", json{{"book_id", "1"}, {"user", "ann"}}));
    CHECK(v1.status == krmx::DecodeStatus::invalid_payload);
    CHECK(v1.reason == "event type 'book.lent' has schema version 1, this catalog reads 2 to 3");
    STATIC_REQUIRE(lent_v3.schema() == 3);
    STATIC_REQUIRE(book_lent.schema() == 1);
}

namespace {
// A shelf a durable game server keeps: it writes book.added in its current shape (schema 2).
struct Shelf {
    std::vector<std::string> titles;
};
const krmx::StreamModel<Shelf>& shelf_model() {
    static const auto model = krmx::StreamModel<Shelf>{}.when(
        book_added, [](Shelf& s, std::string_view, const BookAdded& b) { s.titles.push_back(b.title); });
    return model;
}
}  // namespace

TEST_CASE("every writer records the schema version it wrote, so the catalog never upcasts a current event",
          "[models][catalog]") {
    krmx::MemoryEventStore store;
    const BookAdded dune{"1", "Dune", "Frank Herbert", 9.5, 2};
    // Issue 20, defect 2: a pipelined durable server recorded every event as schema version 1, so a catalog
    // with an upcaster upcast its current events a second time. The version now comes from the model.
    SECTION("a durable domain, pipelined or synchronous: the version comes from its model") {
        const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
        krmx::testing::Hub hub;
        krmx::StreamDomain<Shelf> shelf{hub, "shelf", shelf_model(), {.durability = krmx::durable(store, {.commits = commits})}};
        CHECK(shelf_model().schema_version("book.added") == 2);
        REQUIRE(shelf.dispatch(krmx::server_dispatcher, book_added(dune)));
        REQUIRE(shelf.dispatch(
            krmx::server_dispatcher,
            json{{"type", "book.added"}, {"payload", BookAdded{"2", "Emma", "Austen", 4, 1}}}));
        hub.run_until_idle();
        CHECK(shelf.confirmed_size() == 2);
    }
    SECTION("a direct append of a hand-made record, stamped by the catalog") {
        krmx::NewEvent record;
        record.type = "book.added";
        record.payload = json(dune);
        (void)store.append("shelf", krmx::ExpectedRevision::any(), catalog().stamp(std::move(record)));
        CHECK(store.read_stream("shelf").size() == 1);
    }
    const auto stored = store.read_stream("shelf");
    REQUIRE_FALSE(stored.empty());
    for (const auto& record : stored) {
        CHECK(record.metadata.value("schema", 0) == 2);
        const auto decoded = catalog().decode(record);
        INFO(decoded.reason);
        REQUIRE(decoded.decoded());  // upcasting a schema 2 payload again fails (it has no "id")
        CHECK(decoded.event.payload_if(book_added)->price ==
              Approx(record.payload->at("price").get<double>()));
    }
    CHECK(catalog().decode(stored.front()).event.payload_if(book_added)->title == "Dune");
}

TEST_CASE("stamping a record of a type outside the catalog is an error", "[models][catalog]") {
    krmx::NewEvent record;
    record.type = "book.stolen";
    CHECK_THROWS_AS((void)catalog().stamp(record), krmx::CatalogError);
}

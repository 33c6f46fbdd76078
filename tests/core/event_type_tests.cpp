#include <concepts>
#include <optional>
#include <string>
#include <vector>

#include <krmx/core/event.hpp>
#include <krmx/core/event_type.hpp>

#include "catch.hpp"

// A named namespace: with internal linkage clang warns that the unused from_json is never emitted.
namespace event_type_tests {
struct Book {
    std::string title;
    double price = 0;
    friend bool operator==(const Book&, const Book&) = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Book, title, price)
}  // namespace event_type_tests
using event_type_tests::Book;

namespace {

inline constexpr krmx::EventType<int> increment{"increment"};
inline constexpr krmx::EventType<> claim{"claim"};
inline constexpr krmx::EventType<Book> added{"book.added"};
inline constexpr krmx::EventType<std::optional<std::string>> renamed{"renamed"};
}  // namespace

TEST_CASE("an event type has a stable compile-time name") {
    static_assert(increment.name() == "increment");
    constexpr auto e = increment(3);
    static_assert(e.payload == 3 && e.type == "increment");
    CHECK(e.key == &increment);
}

TEST_CASE("the compiler refuses a payload of the wrong type") {
    static_assert(std::invocable<decltype(increment), int>);
    static_assert(!std::invocable<decltype(increment), std::string>);
    static_assert(!std::invocable<decltype(increment), double>, "narrowing 3.5 to int is refused");
    static_assert(!std::invocable<decltype(increment)>, "a payload is required");
    static_assert(std::invocable<decltype(claim)>);
    static_assert(!std::invocable<decltype(claim), int>, "an event without payload takes none");
    static_assert(std::invocable<decltype(added), Book>);
    static_assert(!std::invocable<decltype(added), int>);
    CHECK(added(Book{"Dune", 9.5}).payload.title == "Dune");
}

TEST_CASE("an event without payload serializes without a payload member, never null") {
    CHECK(claim().to_json().dump() == R"({"type":"claim"})");
    CHECK(increment(3).to_json().dump() == R"({"payload":3,"type":"increment"})");
    nlohmann::json j = claim();
    CHECK_FALSE(j.contains("payload"));
}

TEST_CASE("object and optional payloads serialize through nlohmann") {
    CHECK(added(Book{"Dune", 9.5}).to_json()["payload"] == nlohmann::json{{"title", "Dune"}, {"price", 9.5}});
    CHECK(renamed(std::nullopt).to_json()["payload"].is_null());
    CHECK(renamed(std::string{"x"}).to_json()["payload"] == "x");
}

TEST_CASE("a JSON event is read with its payload, and payload null is not an absent payload") {
    const auto with_null = krmx::event_from_json(nlohmann::json::parse(R"({"type":"a","payload":null})"));
    REQUIRE(with_null.payload.has_value());
    CHECK(with_null.payload->is_null());
    const auto without = krmx::event_from_json(nlohmann::json::parse(R"({"type":"a"})"));
    CHECK_FALSE(without.payload.has_value());
    CHECK(without.to_json().dump() == R"({"type":"a"})");
}

TEST_CASE("malformed JSON events are described, not accepted") {
    CHECK(krmx::malformed_event_reason(nlohmann::json::array()) == "event must be a JSON object, got array");
    CHECK(krmx::malformed_event_reason(nlohmann::json::object()) == R"(event has no "type" member)");
    CHECK(krmx::malformed_event_reason(nlohmann::json{{"type", 3}}) ==
          R"(event "type" must be a string, got number)");
    CHECK_FALSE(krmx::malformed_event_reason(nlohmann::json{{"type", "a"}}).has_value());
    CHECK_THROWS_AS(krmx::event_from_json(nlohmann::json(42)), std::invalid_argument);
}

#include <memory>
#include <string>
#include <vector>

#include <krmx/core/detail/payload_box.hpp>

#include "catch.hpp"

namespace {
struct Counted {
    static inline int alive = 0;
    std::vector<int> big = std::vector<int>(100, 7);  // too large for inline storage? no: a vector fits
    std::string padding = std::string(40, 'x');
    Counted() { ++alive; }
    Counted(const Counted& o) : big(o.big), padding(o.padding) { ++alive; }
    Counted(Counted&& o) noexcept : big(std::move(o.big)), padding(std::move(o.padding)) { ++alive; }
    ~Counted() { --alive; }
    friend bool operator==(const Counted& a, const Counted& b) { return a.big == b.big; }
};
void to_json(nlohmann::json& j, const Counted& c) {
    j = c.big;
}
void from_json(const nlohmann::json& j, Counted& c) {
    c.big = j.get<std::vector<int>>();
}
}  // namespace

using krmx::detail::PayloadBox;

TEST_CASE("small payloads are stored inline and large ones on the heap") {
    STATIC_REQUIRE(krmx::detail::payload_is_inline<int>);
    STATIC_REQUIRE(krmx::detail::payload_is_inline<std::string>);
    STATIC_REQUIRE_FALSE(krmx::detail::payload_is_inline<Counted>);
}

// g++ 12 at -O3 reports -Warray-bounds inside libstdc++ when nlohmann::json is built from a string
// literal to compare it (`to_json() == "short"`): a false positive of its inliner (nlohmann/json#3808).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif
TEST_CASE("a payload box copies, moves and destroys what it holds exactly once") {
    {
        auto a = PayloadBox::make(Counted{});
        CHECK(Counted::alive == 1);
        PayloadBox b = a;
        CHECK(Counted::alive == 2);
        PayloadBox c = std::move(a);
        CHECK(Counted::alive == 2);
        CHECK(a.empty());
        CHECK(c.equals(b));
        std::vector<PayloadBox> many;
        for (int i = 0; i < 100; ++i) many.push_back(b);  // reallocations relocate
        CHECK(Counted::alive == 102);
        b = PayloadBox::make(std::string{"short"});
        CHECK(Counted::alive == 101);
        CHECK(b.to_json() == "short");
    }
    CHECK(Counted::alive == 0);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

TEST_CASE("a payload box built from JSON holds the typed value, and a bad JSON leaves it empty") {
    const auto box = PayloadBox::from_json(krmx::detail::payload_ops<int>, nlohmann::json(5));
    REQUIRE(box.get_if<int>() != nullptr);
    CHECK(*box.get_if<int>() == 5);
    CHECK(box.get_if<std::string>() == nullptr);
    CHECK_THROWS(PayloadBox::from_json(krmx::detail::payload_ops<int>, nlohmann::json("five")));
    CHECK_THROWS(PayloadBox::from_json(krmx::detail::payload_ops<Counted>, nlohmann::json("five")));
    CHECK(Counted::alive == 0);
}

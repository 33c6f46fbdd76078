// krmx::detail::JsonTape, the contiguous form in which a projection keeps each user's view: it reads back
// as the same value with the same types, and tape_diff writes the text of json_diff's delta exactly.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/json_tape.hpp>
#include <krmx/core/json_delta.hpp>

#include "catch.hpp"
#include "json_delta_random.hpp"

using nlohmann::json;
using krmx::detail::JsonTape;

namespace {

// Equal values with equal types all the way down (nlohmann's == says 1 == 1.0).
bool same(const json& a, const json& b) {
    if (a.type() != b.type()) return false;
    if (a.is_object()) {
        if (a.size() != b.size()) return false;
        for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
            if (i.key() != j.key() || !same(*i, *j)) return false;
        }
        return true;
    }
    if (a.is_array()) {
        if (a.size() != b.size()) return false;
        for (std::size_t k = 0; k < a.size(); ++k) {
            if (!same(a[k], b[k])) return false;
        }
        return true;
    }
    return a == b || a.is_discarded() || (a.is_number_float() && a.dump() == b.dump());  // discarded != itself
}

// A delta's text as the projection sends it (invalid UTF-8 replaced).
std::string shown(const std::optional<json>& delta) {
    return delta ? delta->dump(-1, ' ', false, json::error_handler_t::replace) : std::string{"(none)"};
}
std::string shown(const std::optional<std::string>& delta) { return delta ? *delta : std::string{"(none)"}; }

}  // namespace

TEST_CASE("json tape: every kind of value reads back with its type", "[core][json_tape]") {
    const std::vector<json> values = {
        nullptr,
        true,
        false,
        0,
        -1,
        std::numeric_limits<std::int64_t>::min(),
        std::numeric_limits<std::uint64_t>::max(),
        0.0,
        -0.0,
        1.5,
        "",
        std::string("a\0b", 3),
        "\xc3\xa9t\xc3\xa9",
        json::array(),
        json::object(),
        json::parse(R"({"b":[1,2.0,"x",{"":null}],"a":{"c":{"d":[]}},"_t":"a"})"),
        json::binary({1, 2, 3}),
        json::binary({}, 7),
        json(json::value_t::discarded),
    };
    for (const auto& v : values) {
        INFO(v.dump());
        const JsonTape tape{v};
        const auto back = tape.value();
        CHECK(same(back, v));
        if (v.is_binary()) {
            CHECK(back.get_binary().has_subtype() == v.get_binary().has_subtype());
            CHECK(back.get_binary().subtype() == v.get_binary().subtype());
        }
        CHECK(JsonTape{back} == tape);
        CHECK(JsonTape{back}.hash() == tape.hash());
        CHECK(tape.text() == v.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    CHECK(JsonTape{}.value().is_null());
    CHECK(JsonTape{json(1)} != JsonTape{json(1.0)});  // equal values, unequal tapes: tape_diff decides
    CHECK_FALSE(krmx::detail::tape_diff(JsonTape{json(1)}, JsonTape{json(1.0)}).has_value());
}

TEST_CASE("json tape: tape_diff is json_diff on random pairs", "[core][json_tape]") {
    krmx_test::JsonDeltaRandom random{20261207};
    int changed = 0;
    for (int i = 0; i < 3000; ++i) {
        const auto [from, to] = random.pair();
        INFO("case " << i << "\nfrom " << from.dump() << "\nto   " << to.dump());
        const JsonTape a{from};
        const JsonTape b{to};
        CHECK(same(a.value(), from));
        CHECK(same(b.value(), to));
        CHECK(a.text() == from.dump(-1, ' ', false, json::error_handler_t::replace));
        const auto expected = krmx::json_diff(from, to);
        const auto delta = krmx::detail::tape_diff(a, b);
        CHECK(shown(delta) == shown(expected));
        CHECK(shown(krmx::detail::tape_diff(b, a)) == shown(krmx::json_diff(to, from)));
        CHECK_FALSE(krmx::detail::tape_diff(a, a).has_value());
        if (expected) ++changed;
    }
    CHECK(changed > 2500);
}

TEST_CASE("json tape: a batch's cache diffs each top-level member that changed alike once, to the same text",
          "[core][json_tape]") {
    // Six players: each a hand of its own, one table for all; the table changes, and so does one hand.
    const auto view = [](int player, const json& table, int round, bool played) {
        json hand = json::array({player, player + 10, player + 20});
        if (played) hand.erase(hand.begin());
        return json{{"hand", hand}, {"round", round}, {"table", table}};
    };
    const json table_before = {{"pile", {3, 4}}, {"held", {{"a", 3}, {"b", 3}}}, {"x", 1}};
    const json table_after = {{"pile", {3, 4, 0}}, {"held", {{"a", 2}, {"b", 3}}}, {"x", 1.0}};  // 1.0: no change
    krmx::detail::TapeDiffCache cache;
    std::vector<JsonTape> tapes;  // the cache keeps views of the tapes it diffed: they outlive it
    tapes.reserve(12);
    for (int player = 0; player < 6; ++player) {
        const auto from = view(player, table_before, 1, false);
        const auto to = view(player, table_after, 2, player == 0);
        const auto& a = tapes.emplace_back(from);
        const auto& b = tapes.emplace_back(to);
        CHECK(shown(krmx::detail::tape_diff(a, b, &cache)) == shown(krmx::json_diff(from, to)));
    }
    CHECK(cache.hits == 5);  // the table, after the first player
    // Members equal by value only: the cached answer is "no delta" too.
    krmx::detail::TapeDiffCache equal_cache;
    const JsonTape one{json{{"t", {{"x", 1}}}, {"p", 1}}};
    const JsonTape one_point_o{json{{"t", {{"x", 1.0}}}, {"p", 2}}};
    for (int k = 0; k < 2; ++k) {
        CHECK(shown(krmx::detail::tape_diff(one, one_point_o, &equal_cache)) == R"({"p":[1,2]})");
    }
    CHECK(equal_cache.hits == 1);

    // Random members, private and shared, through one cache per batch: the same text as without.
    krmx_test::JsonDeltaRandom random{20261208};
    for (int i = 0; i < 300; ++i) {
        const auto [shared_from, shared_to] = random.pair();
        krmx::detail::TapeDiffCache batch;
        std::vector<JsonTape> kept;
        kept.reserve(8);
        for (int player = 0; player < 4; ++player) {
            const auto [own_from, own_to] = random.pair();
            const json from = {{"own", own_from}, {"shared", shared_from}, {"_t", player == 3 ? json("a") : json(0)}};
            const json to = {{"own", own_to}, {"shared", shared_to}, {"_t", player == 3 ? json("b") : json(0)}};
            INFO("case " << i << " player " << player << "\nfrom " << from.dump() << "\nto   " << to.dump());
            const auto& a = kept.emplace_back(from);
            const auto& b = kept.emplace_back(to);
            CHECK(shown(krmx::detail::tape_diff(a, b, &batch)) == shown(krmx::json_diff(from, to)));
        }
    }
}

TEST_CASE("json tape: what json_diff does specially, tape_diff does alike", "[core][json_tape]") {
    const auto check = [](const json& from, const json& to) {
        INFO("from " << shown(from) << "\nto   " << shown(to));
        CHECK(shown(krmx::detail::tape_diff(JsonTape{from}, JsonTape{to})) == shown(krmx::json_diff(from, to)));
    };
    // A member named _t: the object is replaced whole.
    check(json::parse(R"({"x":{"_t":1,"a":1}})"), json::parse(R"({"x":{"_t":2,"a":1}})"));
    check(json::parse(R"({"x":{"a":1}})"), json::parse(R"({"x":{"_t":"a","a":1}})"));
    // Numbers by value, nested.
    check(json::parse(R"({"a":{"b":1,"c":[1]}})"), json::parse(R"({"a":{"b":1.0,"c":[1.0]}})"));
    check(json::parse(R"({"a":-0.0})"), json::parse(R"({"a":0})"));
    // Kinds that change, members added and deleted around equal ones.
    check(json::parse(R"({"a":{"b":1},"m":2,"z":[1]})"), json::parse(R"({"a":[1],"n":2,"z":{"b":1}})"));
    check(json::parse(R"({})"), json::parse(R"({"a":{"b":{}}})"));
    // Deeper than a delta may nest: the deepest changed object is replaced whole, as json_diff does.
    json deep_from = 1;
    json deep_to = 2;
    for (int level = 0; level < krmx::json_delta_max_depth + 3; ++level) {
        deep_from = json{{"k", deep_from}, {"same", level}};
        deep_to = json{{"k", deep_to}, {"same", level}};
    }
    check(deep_from, deep_to);
    check(deep_from, deep_from);
    // Text that nlohmann writes in its own way: escapes, invalid UTF-8 (replaced), doubles, keys alike.
    check(json::parse(R"({"a":"x","b\"q":1,"c":0.5})"), json::parse(R"({"a":"x\ny","b\"q":2,"c":1e300,"\u0001":[0.1]})"));
    check(json{{"k\xff", "v"}, {"s", "\xc3"}}, json{{"k\xff", "w"}, {"s", "\xc3\xa9\x80"}, {"\x7f", -1.0}});
    check(json{{"i", -5}, {"u", 5u}, {"n", nullptr}, {"b", true}}, json{{"i", std::numeric_limits<std::int64_t>::min()},
                                                                      {"u", std::numeric_limits<std::uint64_t>::max()},
                                                                      {"n", false},
                                                                      {"b", "true"}});
    check(json{{"i", 5}, {"u", 6u}}, json{{"i", 5u}, {"u", 6}});  // equal values of other types: no delta
    check(json{{"i", 5}, {"u", 6u}}, json{{"i", 7u}, {"u", -6}});
    check(json{{"x", json::binary({1})}}, json{{"x", json::binary({2}, 3)}});
}

// json_diff and json_patch: jsondiffpatch's delta format (the format of Krmx's projections). The deltas
// "from JavaScript" below were written by jsondiffpatch 0.5.0's diff; the differential test
// (js/json_delta.mjs with json_delta_peer) checks thousands more against the real package both ways.

#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/json_delta.hpp>
#include <krmx/core/json_optional.hpp>  // after json_delta.hpp: its optional<json> must not come first

#include "catch.hpp"
#include "json_delta_random.hpp"

using nlohmann::json;

namespace {

json patched(json value, const json& delta) {
    krmx::json_patch(value, delta);
    return value;
}

// The delta json_diff writes, checked to patch `from` into `to`.
json diff_of(const json& from, const json& to) {
    const auto delta = krmx::json_diff(from, to);
    REQUIRE(delta.has_value());
    CHECK(patched(from, *delta) == to);
    return *delta;
}

// No unchanged member appears in an object delta, at any depth json_diff reached.
void check_compact(const json& from, const json& to, const json& delta) {
    if (!delta.is_object() || !from.is_object() || !to.is_object() || delta.contains("_t")) return;
    for (const auto& [key, entry] : delta.items()) {
        INFO("member " << key);
        const bool both = from.contains(key) && to.contains(key);
        if (both) {
            CHECK(from[key] != to[key]);
            check_compact(from[key], to[key], entry);
        }
    }
}

// A value nested `depth` objects deep ({"a":{"a":...}}), and a delta that changes its innermost member.
// Built from the inside out by moves, never recursively.
std::pair<json, json> nested(int depth) {
    json value = 1;
    json delta = json::array({1, 2});
    for (int i = 0; i < depth; ++i) {
        json v = json::object();
        v["a"] = std::move(value);
        value = std::move(v);
        json d = json::object();
        d["a"] = std::move(delta);
        delta = std::move(d);
    }
    return {std::move(value), std::move(delta)};
}

// The message json_patch throws with (empty when it does not throw).
std::string refusal(json value, const json& delta) {
    try {
        krmx::json_patch(value, delta);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return {};
}

// For messages: a damaged delta may hold broken UTF-8 (dump would throw).
std::string shown(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A delta damaged in one place: keys renamed, shapes changed, indices made huge or negative, parts dropped.
json damage(krmx_test::JsonDeltaRandom& random, json delta) {
    // Somewhere in the delta's own structure (not inside the values it carries).
    json* at = &delta;
    while ((at->is_object() && !at->empty() && random.chance(60)) ||
           (at->is_array() && at->size() == 2 && at->at(1).is_object() && random.chance(30))) {
        auto it = at->begin();
        std::advance(it, static_cast<std::ptrdiff_t>(random.below(at->size())));
        at = &*it;
    }
    static const std::vector<json> odd = {json(-1),
                                          json(1.5),
                                          json("1"),
                                          json(nullptr),
                                          json::array(),
                                          json::object(),
                                          json(std::uint64_t{18446744073709551615u}),
                                          json(3),
                                          json(2),
                                          json(0),
                                          json("a"),
                                          json::parse(R"({"_t":"a"})"),
                                          json::parse("[1,0,0]"),
                                          json::parse(R"(["",0,3])")};
    const auto oddity = [&] {
        return odd[random.below(odd.size())];
    };
    switch (random.below(6)) {
        case 0:
            *at = oddity();
            break;
        case 1:
            if (at->is_array() && !at->empty())
                (*at)[random.below(at->size())] = oddity();
            else
                *at = oddity();
            break;
        case 2:
            if (at->is_array())
                at->push_back(oddity());
            else if (at->is_object())
                (*at)[random.key()] = oddity();
            break;
        case 3:
            if (at->is_object()) {
                static const char* keys[] = {"_t",
                                             "0",
                                             "_0",
                                             "7",
                                             "_7",
                                             "-1",
                                             "_-1",
                                             "01",
                                             "x",
                                             "",
                                             "_",
                                             "99999999999999999999",
                                             "_18446744073709551616"};
                (*at)[keys[random.below(std::size(keys))]] = oddity();
            }
            break;
        case 4:
            if (at->is_object() && !at->empty()) {
                auto it = at->begin();
                std::advance(it, static_cast<std::ptrdiff_t>(random.below(at->size())));
                at->erase(it);
            }
            break;
        default:
            if (at->is_array() && at->size() == 3 && at->at(0).is_string()) {
                std::string text = at->at(0).get<std::string>();  // a text diff: damage its patch text
                if (!text.empty()) text[random.below(text.size())] = "@-+ %,0\n9"[random.below(10)];
                (*at)[0] = text;
            }
            break;
    }
    return delta;
}

}  // namespace

TEST_CASE("equal values have no delta, numbers compared by value as JavaScript does", "[core][json_delta]") {
    for (const char* text : {"null", "true", "0", "-3", "2.5", R"("")", R"("long string that is long")", "[]",
                             "{}", R"({"a":[1,{"b":null}],"c":"d"})", "[[[]]]"}) {
        const auto value = json::parse(text);
        CHECK_FALSE(krmx::json_diff(value, value).has_value());
    }
    CHECK_FALSE(krmx::json_diff(json(1), json(1.0)).has_value());   // one number in JavaScript
    CHECK_FALSE(krmx::json_diff(json(0), json(-0.0)).has_value());  // 0 === -0
    CHECK_FALSE(krmx::json_diff(json(7u), json(std::int64_t{7})).has_value());
    CHECK_FALSE(
        krmx::json_diff(json::parse(R"({"a":[1,2.0]})"), json::parse(R"({"a":[1.0,2]})")).has_value());
    CHECK(krmx::json_diff(json(true), json(1)).has_value());  // true !== 1
    CHECK(krmx::json_diff(json(nullptr), json(0)).has_value());
}

TEST_CASE("the array delta without changes leaves any value as it is, as in JavaScript", "[core][json_delta]") {
    for (const char* text : {"null", "true", "0", "-2.5", R"("")", R"("text")", "[]", "[1,[2]]", "{}",
                             R"({"a":{"b":[1,2]},"_t":"x"})"}) {
        CAPTURE(text);
        const auto before = json::parse(text);
        auto value = before;
        krmx::json_patch(value, json::parse(R"({"_t":"a"})"));
        CHECK(value == before);
    }
    auto value = json::parse(R"({"a":1})");
    CHECK_THROWS_AS(krmx::json_patch(value, json::parse(R"({"_t":"b"})")), std::invalid_argument);
    CHECK_THROWS_AS(krmx::json_patch(value, json::parse(R"({"_t":"a","_0":[1,0,0]})")), std::invalid_argument);
}

TEST_CASE("json_diff writes each shape of jsondiffpatch's format", "[core][json_delta]") {
    SECTION("replaced, and type changes") {
        CHECK(diff_of(json(1), json(2)) == json::parse("[1,2]"));
        CHECK(diff_of(json(1), json("1")) == json::parse(R"([1,"1"])"));
        CHECK(diff_of(json(nullptr), json::object()) == json::parse("[null,{}]"));
        CHECK(diff_of(json::array(), json::object()) == json::parse("[[],{}]"));
        CHECK(diff_of(json(false), json(true)) == json::parse("[false,true]"));
        CHECK(diff_of(json("a"), json::array({"a"})) == json::parse(R"(["a",["a"]])"));
    }
    SECTION("a long string is replaced whole, [old, new]: two elements, never the three of a text diff") {
        const std::string from(200, 'x');
        const std::string to = from + "y";
        const auto delta = diff_of(json(from), json(to));
        REQUIRE(delta.is_array());
        CHECK(delta.size() == 2);
        CHECK(delta[1] == to);
    }
    SECTION("object members added, deleted, changed; unchanged ones never appear") {
        const auto from =
            json::parse(R"({"keep":{"deep":[1,2,3]},"gone":5,"change":"a","nested":{"x":1,"y":2}})");
        const auto to =
            json::parse(R"({"keep":{"deep":[1,2,3]},"new":[null],"change":"b","nested":{"x":1,"y":3}})");
        CHECK(diff_of(from, to) ==
              json::parse(R"({"gone":[5,0,0],"new":[[null]],"change":["a","b"],"nested":{"y":[2,3]}})"));
    }
    SECTION("arrays: insertions at the new index, deletions at the original one, changes in place") {
        CHECK(diff_of(json::parse("[1,2,3]"), json::parse("[1,2,3,4]")) ==
              json::parse(R"({"_t":"a","3":[4]})"));
        CHECK(diff_of(json::parse("[1,2,3]"), json::parse("[0,1,2,3]")) ==
              json::parse(R"({"_t":"a","0":[0]})"));
        CHECK(diff_of(json::parse("[1,2,3]"), json::parse("[1,3]")) ==
              json::parse(R"({"_t":"a","_1":[2,0,0]})"));
        CHECK(diff_of(json::parse("[1,2,3]"), json::parse("[1,5,3]")) ==
              json::parse(R"({"_t":"a","1":[2,5]})"));
        CHECK(diff_of(json::parse("[1,2,3,4,5,6]"), json::parse("[0,1,3,9,5,6,7]")) ==
              json::parse(R"({"_t":"a","0":[0],"_1":[2,0,0],"3":[4,9],"6":[7]})"));
        CHECK(diff_of(json::parse("[1,2]"), json::parse("[]")) ==
              json::parse(R"({"_t":"a","_0":[1,0,0],"_1":[2,0,0]})"));
    }
    SECTION("arrays of objects and nested arrays change by nested deltas under the new index") {
        CHECK(diff_of(json::parse(R"([{"a":1},{"b":2},{"c":3}])"),
                      json::parse(R"([{"a":1},{"b":3},{"c":3}])")) ==
              json::parse(R"({"_t":"a","1":{"b":[2,3]}})"));
        CHECK(diff_of(json::parse(R"([0,{"id":1,"v":1},{"id":2}])"),
                      json::parse(R"([{"id":1,"v":2},{"id":2},9])")) ==
              json::parse(R"({"_t":"a","_0":[0,0,0],"0":{"v":[1,2]},"2":[9]})"));
        CHECK(diff_of(json::parse("[[1,2],[3]]"), json::parse("[[1,2,3],[3]]")) ==
              json::parse(R"({"_t":"a","0":{"_t":"a","2":[3]}})"));
    }
    SECTION("a member named _t would read as an array delta: the object is replaced whole") {
        const auto from = json::parse(R"({"_t":1,"x":{"big":[1,2,3]}})");
        const auto to = json::parse(R"({"_t":2,"x":{"big":[1,2,3]}})");
        CHECK(diff_of(from, to) == json::array({from, to}));
        // An unchanged _t is no trouble.
        CHECK(diff_of(json::parse(R"({"_t":1,"x":1})"), json::parse(R"({"_t":1,"x":2})")) ==
              json::parse(R"({"x":[1,2]})"));
    }
}

TEST_CASE("json_patch applies the deltas of JavaScript's diff: moves, text diffs, and its order",
          "[core][json_delta]") {
    SECTION("moves, with deletions and insertions around them") {
        CHECK(patched(json::parse("[1,2,3,4]"), json::parse(R"({"_t":"a","_3":["",0,3]})")) ==
              json::parse("[4,1,2,3]"));
        CHECK(patched(json::parse("[1,2,3,4,5]"),
                      json::parse(R"({"_t":"a","_1":["",3,3],"_2":["",2,3],"_3":["",1,3],"_4":["",0,3]})")) ==
              json::parse("[5,4,3,2,1]"));
        CHECK(
            patched(
                json::parse("[1,2,3,4,5,6,7]"),
                json::parse(
                    R"({"2":[8],"4":[9],"_t":"a","_1":["",6,3],"_3":[4,0,0],"_5":[6,0,0],"_6":["",0,3]})")) ==
            json::parse("[7,1,8,3,9,5,2]"));
        CHECK(patched(json::parse(R"([{"id":1},{"id":2},{"id":3},{"id":4}])"),
                      json::parse(R"({"2":[{"id":9}],"_t":"a","_1":[{"id":2},0,0],"_3":["",0,3]})")) ==
              json::parse(R"([{"id":4},{"id":1},{"id":9},{"id":3}])"));
        CHECK(patched(json::parse(R"({"list":[{"id":1},{"id":2},{"id":3}],"n":1})"),
                      json::parse(R"({"list":{"_t":"a","_2":["",0,3]},"n":[1,2]})")) ==
              json::parse(R"({"list":[{"id":3},{"id":1},{"id":2}],"n":2})"));
    }
    SECTION("changes apply last, to the element at the new index (a moved one too)") {
        CHECK(patched(json::parse(R"([{"id":1,"v":1},{"id":2}])"),
                      json::parse(R"({"_t":"a","_0":["",1,3],"1":{"v":[1,2]}})")) ==
              json::parse(R"([{"id":2},{"id":1,"v":2}])"));
        // ["a",[1],"c"] without "a" is [[1],"c"]; ["x"] goes in at 0: [["x"],[1],"c"]; element 2 is "c".
        CHECK_THROWS_AS(
            patched(json::parse(R"(["a",[1],"c"])"),
                    json::parse(R"({"_t":"a","_0":["a",0,0],"0":[["x"]],"2":{"_t":"a","1":[2]}})")),
            std::invalid_argument);
        CHECK(patched(json::parse(R"(["a",[1],"c"])"),
                      json::parse(R"({"_t":"a","_0":["a",0,0],"0":[["x"]],"1":{"_t":"a","1":[2]}})")) ==
              json::parse(R"([["x"],[1,2],"c"])"));
    }
    SECTION("text diffs: diff-match-patch's hunks, offsets in UTF-16 units, %-encoded lines") {
        CHECK(
            patched(
                json("The quick brown fox jumps over the lazy dog, again and again and again!"),
                json::parse(
                    R"(["@@ -13,11 +13,11 @@\n own \n-fox\n+cat\n  jum\n@@ -58,14 +58,17 @@\n ain \n-and\n+&\n  again!\n+ %C3%BC %F0%9F%98%80\n",0,2])")) ==
            json("The quick brown cat jumps over the lazy dog, again and again & again! \xc3\xbc "
                 "\xf0\x9f\x98\x80"));
        std::string tens;
        for (int i = 0; i < 10; ++i) tens += "0123456789";
        std::string expected;
        for (int i = 0; i < 3; ++i) expected += "0123456789";
        expected += "abc";
        for (int i = 0; i < 7; ++i) expected += "0123456789";
        expected += "%20 x";  // written %2520: an escaped %
        CHECK(
            patched(
                json(tens),
                json::parse(
                    R"(["@@ -15,32 +15,35 @@\n 4567890123456789\n+abc\n 0123456789012345\n@@ -76,28 +76,33 @@\n 2345678901234567890123456789\n+%2520 x\n",0,2])")) ==
            json(expected));
        // Offsets count UTF-16 units: the emoji before the edit is two of them.
        CHECK(patched(json("\xf0\x9f\x98\x80"
                           "abcdef"),
                      json::parse(R"(["@@ -3,4 +3,5 @@\n abc\n+X\n d\n",0,2])")) == json("\xf0\x9f\x98\x80"
                                                                                         "abcXdef"));
        // An empty range is written at the position before it; a length of one is left out.
        CHECK(patched(json(""), json::parse(R"(["@@ -0,0 +1,3 @@\n+abc\n",0,2])")) == json("abc"));
        CHECK(patched(json("abc"), json::parse(R"(["@@ -2 +2 @@\n-b\n+B\n",0,2])")) == json("aBc"));
        CHECK(patched(json("a;b"), json::parse(R"(["@@ -1,3 +1,6 @@\n a;b\n+%3B\n",0,2])")) ==
              json("a;b%3B"));  // decodeURI keeps reserved escapes
        CHECK(patched(json("same"), json::parse(R"(["",0,2])")) == json("same"));
    }
    SECTION("added and replaced at the root replace the value") {
        CHECK(patched(json(1), json::parse(R"([{"a":1}])")) == json::parse(R"({"a":1})"));
        CHECK(patched(json(1), json::parse(R"([1,[2,0,2]])")) == json::parse("[2,0,2]"));
        CHECK(patched(json::object(), json::parse(R"({"a":[[1,0,0]]})")) == json::parse(R"({"a":[1,0,0]})"));
        CHECK(patched(json::array(), json::parse(R"({"_t":"a"})")) == json::array());
    }
}

TEST_CASE("random pairs: json_patch(from, json_diff(from, to)) is to", "[core][json_delta]") {
    krmx_test::JsonDeltaRandom random{20260611};
    int changed = 0;
    for (int i = 0; i < 3000; ++i) {
        const auto [from, to] = random.pair();
        INFO("case " << i << "\nfrom " << from.dump() << "\nto   " << to.dump());
        const auto delta = krmx::json_diff(from, to);
        CHECK(delta.has_value() == (from != to));
        CHECK_FALSE(krmx::json_diff(from, from).has_value());
        CHECK_FALSE(krmx::json_diff(to, to).has_value());
        if (!delta) continue;
        ++changed;
        INFO("delta " << delta->dump());
        CHECK(patched(from, *delta) == to);
        check_compact(from, to, *delta);
        // Backwards too: the same code, the other way round.
        const auto back = krmx::json_diff(to, from);
        REQUIRE(back.has_value());
        CHECK(patched(to, *back) == from);
    }
    CHECK(changed > 2500);
}

TEST_CASE("long arrays: the common subsequence and, beyond its bound, pairing by position",
          "[core][json_delta]") {
    krmx_test::JsonDeltaRandom random{7};
    for (const std::size_t length : {std::size_t{40}, std::size_t{900}, std::size_t{3000}}) {
        auto from = json::array();
        for (std::size_t i = 0; i < length; ++i) from.push_back(json{{"id", i}, {"v", random.number()}});
        auto to = from;
        auto& elements = to.get_ref<json::array_t&>();
        for (int k = 0; k < 6; ++k) {
            elements.insert(elements.begin() + static_cast<std::ptrdiff_t>(random.below(elements.size())),
                            json{{"new", k}});
            elements.erase(elements.begin() + static_cast<std::ptrdiff_t>(random.below(elements.size())));
            elements[random.below(elements.size())]["v"] = "changed";
        }
        INFO("length " << length);
        const auto delta = diff_of(from, to);
        // Small deltas for small changes: a dozen edits, not a rewrite of the array.
        CHECK(delta.size() <= (length > 1024 ? length + 1 : 30));
    }
    // Only a change in the middle: the prefix and suffix make it one nested delta even in a huge array.
    auto from = json::array();
    for (int i = 0; i < 20000; ++i) from.push_back(i);
    auto to = from;
    to[10000] = "x";
    CHECK(diff_of(from, to) == json::parse(R"({"_t":"a","10000":[10000,"x"]})"));
}

TEST_CASE("malformed deltas throw std::invalid_argument and leave the value unchanged",
          "[core][json_delta]") {
    const auto value = json::parse(R"({"a":[1,2,3],"b":{"c":"text","d":null},"s":"hello world"})");
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"5", "not an array or object"},
        {R"("x")", "a string"},
        {"null", "null"},
        {"true", "a boolean"},
        {"[]", "an empty array"},
        {"[1,2,3,4]", "four elements"},
        {"[1,2,5]", "an unknown third element"},
        {"[1,1,0]", "a deletion without 0 in the middle"},
        {R"([1,0,0])", "deleting the root"},
        {R"(["",0,3])", "a move at the root"},
        {R"([5,0,2])", "a text diff whose patch is not a string"},
        {"{}", "an empty object delta"},
        {R"({"b":{}})", "an empty nested object delta (JavaScript would delete b)"},
        {R"({"a":{"_t":"b","0":[1,2]}})", "_t not \"a\""},
        {R"({"a":{"_t":1}})", "_t a number"},
        {R"({"a":{"_t":null}})", "_t null"},
        {R"({"a":{"_t":["a"]}})", "_t an array"},
        {R"({"a":{"_t":{}}})", "_t an object"},
        {R"({"b":{"_t":"a"}})", "an array delta on an object"},
        {R"({"a":{"0":[1,5]}})", "an object delta on an array"},
        {R"({"s":{"x":[1]}})", "an object delta on a string"},
        {R"({"a":["x"]})", "adding a member that exists"},
        {R"({"z":[1,0,0]})", "deleting a member that does not exist"},
        {R"({"z":[1,2]})", "changing a member that does not exist"},
        {R"({"z":{"q":[1]}})", "a nested delta on a member that does not exist"},
        {R"({"b":["",0,3]})", "a move in an object delta"},
        {R"({"a":{"_t":"a","x":[1]}})", "an array key that is no index"},
        {R"({"a":{"_t":"a","-1":[1]}})", "a negative index"},
        {R"({"a":{"_t":"a","_-1":[1,0,0]}})", "a negative original index"},
        {R"({"a":{"_t":"a","01":[1]}})", "a leading zero"},
        {R"({"a":{"_t":"a","_01":[1,0,0]}})", "a leading zero in an original index"},
        {R"({"a":{"_t":"a","1.0":[1]}})", "a fraction"},
        {R"({"a":{"_t":"a","":[1]}})", "an empty key"},
        {R"({"a":{"_t":"a","_":[1,0,0]}})", "a bare underscore"},
        {R"({"a":{"_t":"a","99999999999999999999":[1]}})", "a huge index"},
        {R"({"a":{"_t":"a","_18446744073709551616":[1,0,0]}})", "a huge original index"},
        {R"({"a":{"_t":"a","_3":[1,0,0]}})", "deleting past the end"},
        {R"({"a":{"_t":"a","4":[1]}})", "inserting past the end"},
        {R"({"a":{"_t":"a","3":[1,2]}})", "changing past the end"},
        {R"({"a":{"_t":"a","_0":[1,0,0],"2":[1,2]}})", "changing past the end after a deletion"},
        {R"({"a":{"_t":"a","_0":["",3,3]}})", "moving past the end"},
        {R"({"a":{"_t":"a","_0":["",18446744073709551615,3]}})", "moving to a huge index"},
        {R"({"a":{"_t":"a","_0":["",-1,3]}})", "moving to a negative index"},
        {R"({"a":{"_t":"a","_0":["",1.5,3]}})", "moving to a fraction"},
        {R"({"a":{"_t":"a","_0":["","1",3]}})", "moving to a string index"},
        {R"({"a":{"_t":"a","_0":["",1,3],"1":[9]}})", "a move and an insertion at one index"},
        {R"({"a":{"_t":"a","_0":[1,2]}})", "a replacement under an original index"},
        {R"({"a":{"_t":"a","_0":[1]}})", "an insertion under an original index"},
        {R"({"a":{"_t":"a","_0":{"x":[1]}}})", "a nested delta under an original index"},
        {R"({"a":{"_t":"a","0":[1,0,0]}})", "a deletion under a new index"},
        {R"({"a":{"_t":"a","0":["",1,3]}})", "a move under a new index"},
        {R"({"a":{"_t":"a","0":5}})", "an entry that is no delta"},
        {R"({"a":{"_t":"a","0":{"x":[1]}}})", "an object delta on a number element"},
        {R"({"b":{"c":["@@ -1,3 +1,3 @@\n-xyz\n+abc\n",0,2]}})", "a text diff that does not fit"},
        {R"({"b":{"d":["@@ -1,3 +1,3 @@\n-xyz\n+abc\n",0,2]}})", "a text diff on null"},
        {R"({"s":["not a header\n",0,2]})", "a text diff without a header"},
        {R"({"s":["@@ -1,5 +1,5 @@\n hello\n*x\n",0,2]})", "an unknown hunk line"},
        {R"({"s":["@@ -1,5 +1,5 @@\n hel%ZZ\n",0,2]})", "a bad escape"},
        {R"({"s":["@@ -1,1 +1,1 @@\n-h\n+%C0%80\n",0,2]})", "an overlong UTF-8 escape"},
        {R"({"s":["@@ -1,1 +1,1 @@\n-h\n+%ED%A0%80\n",0,2]})", "an escaped surrogate"},
        {R"({"s":["@@ -1,1 +1,1 @@\n-h\n+%F4%90%80%80\n",0,2]})", "an escape past U+10FFFF"},
        {R"({"s":["@@ -1,1 +1,1 @@\n-h\n+%E2%82\n",0,2]})", "a truncated escape"},
        {R"({"s":["@@ -1,5 +1,5 @@\n hell\n",0,2]})", "a header length that the lines do not have"},
        {R"({"s":["@@ -20,3 +20,3 @@\n-abc\n+xyz\n",0,2]})", "a hunk past the end"},
        {R"({"s":["@@ -99999999999999999999,1 +1,1 @@\n-h\n+j\n",0,2]})", "a huge hunk start"},
        {R"({"s":["@@ -0,1 +0,1 @@\n-h\n+j\n",0,2]})", "a 1-based start of 0"},
        {R"({"a":[[1,2,3],5],"b":{"c":["text",0,0],"d":{"x":[1]}}})",
         "a bad part after good ones (a and b.c)"},
        {R"({"a":{"_t":"a","_0":[1,0,0],"0":[2,8],"1":{"x":[1]}}})",
         "a bad change after a good deletion and change"},
        {R"({"s":["hello",1]})", "an old value that is not the value there"},
        {R"({"b":{"c":["other",0,0]}})", "a deletion whose old value is not the member"},
        {R"({"a":{"_t":"a","_1":[5,0,0]}})", "a deletion whose old value is not the element"},
        {R"({"a":{"_t":"a","_0":[1,0,0],"0":[3,4]}})",
         "a change whose old value is not the element at the new index"},
        {R"({"a":[[1,2],[1]]})", "an old array that is not the array there"},
    };
    for (const auto& [delta_text, what] : cases) {
        INFO(what << ": " << delta_text);
        const auto delta = json::parse(delta_text);
        auto copy = value;
        CHECK_THROWS_AS(krmx::json_patch(copy, delta), std::invalid_argument);
        CHECK(copy == value);
    }
    // A text diff that would split a surrogate pair (no UTF-8 for half of one).
    auto emoji = json("\xf0\x9f\x98\x80");
    CHECK_THROWS_AS(krmx::json_patch(emoji, json::parse(R"(["@@ -1,0 +2,1 @@\n+x\n",0,2])")),
                    std::invalid_argument);
    CHECK(emoji == json("\xf0\x9f\x98\x80"));
    // A string in the value that is not UTF-8 (only C++ builds one).
    auto bytes = json(std::string(70, 'a') + "\xff");
    const auto before = bytes;
    CHECK_THROWS_AS(krmx::json_patch(bytes, json::parse(R"(["@@ -1,1 +1,1 @@\n-a\n+b\n",0,2])")),
                    std::invalid_argument);
    CHECK(bytes == before);
}

TEST_CASE("a delta applied twice, or to a value it was not made for, is refused", "[core][json_delta]") {
    const auto from =
        json::parse(R"({"turn":"ann","players":[{"name":"ann","score":3},{"name":"bob","score":1}]})");
    auto to = from;
    to["turn"] = "bob";
    to["players"][1]["score"] = 4;
    const auto delta = diff_of(from, to);
    auto value = from;
    krmx::json_patch(value, delta);
    CHECK(value == to);
    CHECK(refusal(value, delta) ==
          "json_patch: at /players/1/score: the old value of the replacement is not the value there");
    CHECK(value == to);
    // Old values compare as numbers compare: 1 and 1.0 are one number.
    CHECK(patched(json::parse(R"({"x":1.0})"), json::parse(R"({"x":[1,2]})")) == json::parse(R"({"x":2})"));
    // A move's "" is no old value.
    CHECK(patched(json::parse("[1,2]"), json::parse(R"({"_t":"a","_1":["",0,3]})")) == json::parse("[2,1]"));
}

TEST_CASE("damaged deltas either apply or throw std::invalid_argument, and a refused one changes nothing",
          "[core][json_delta]") {
    krmx_test::JsonDeltaRandom random{424242};
    int refused = 0;
    for (int i = 0; i < 4000; ++i) {
        auto [from, to] = random.pair();
        if (i % 4 == 0) {  // long strings and a text diff of JavaScript's to damage
            from = json::parse(
                R"({"t":"The quick brown fox jumps over the lazy dog, again and again and again!"})");
            to = json::object();
        }
        auto delta =
            i % 4 == 0
                ? json::parse(
                      R"({"t":["@@ -13,11 +13,11 @@\n own \n-fox\n+cat\n  jum\n@@ -58,14 +58,17 @@\n ain \n-and\n+&\n  again!\n+ %C3%BC %F0%9F%98%80\n",0,2]})")
                : krmx::json_diff(from, to).value_or(json::array({from, to}));
        delta = damage(random, std::move(delta));
        INFO("case " << i << "\nfrom  " << shown(from) << "\ndelta " << shown(delta));
        auto value = from;
        try {
            krmx::json_patch(value, delta);
        } catch (const std::invalid_argument&) {
            ++refused;
            CHECK(value == from);
        } catch (const std::exception& e) {
            FAIL("json_patch threw something else: " << e.what());
        }
    }
    CHECK(refused > 1000);
}

TEST_CASE("a refused delta says where and why", "[core][json_delta]") {
    const auto value = json::parse(R"({"players":[{"name":"ann"},{"name":"bob"}]})");
    CHECK(refusal(value, json::parse(R"({"players":{"_t":"a","1":{"score":[1,2]}}})")) ==
          "json_patch: at /players/1/score: no such member to change or delete");
    CHECK(refusal(value, json::parse(R"({"players":{"_t":"a","_5":[1,0,0]}})")) ==
          "json_patch: at /players/_5: the array has 2 elements, there is no element 5 to delete or move");
    CHECK(refusal(value, json::parse("{\"\\u0001\\u00e9x\":[1,2]}")) ==
          "json_patch: at /\\x01\\xc3\\xa9x: no such member to change or delete");
    CHECK(refusal(value, json::parse(R"([1,0,0])")) ==
          "json_patch: at the root: a delta cannot delete the whole value");
}

TEST_CASE("deltas nest at most json_delta_max_depth levels, and a deeper one throws without deep recursion",
          "[core][json_delta]") {
    STATIC_REQUIRE(krmx::json_delta_max_depth == 128);
    {
        auto [value, delta] = nested(128);  // 128 object deltas and [1, 2] inside the last
        krmx::json_patch(value, delta);
        const json* inner = &value;
        for (int i = 0; i < 128; ++i) inner = &(*inner)["a"];
        CHECK(*inner == 2);
    }
    {
        auto [value, delta] = nested(129);
        const auto before = value;
        CHECK(refusal(value, delta).find("the delta nests deeper than 128 levels") != std::string::npos);
        CHECK(value == before);
    }
    {
        // 10 000 levels of delta on a value of 200: refused at level 129, the stack never sees the rest.
        auto [value, ignored] = nested(200);
        auto [unused, delta] = nested(10000);
        CHECK_THROWS_AS(krmx::json_patch(value, delta), std::invalid_argument);
        json arrays = json::array({1, 2});
        for (int i = 0; i < 10000; ++i) {
            json d = json::object();
            d["_t"] = "a";
            d["0"] = std::move(arrays);
            arrays = std::move(d);
        }
        auto deep_arrays = json::array();
        for (int i = 0; i < 150; ++i) deep_arrays = json::array({std::move(deep_arrays)});
        CHECK_THROWS_AS(krmx::json_patch(deep_arrays, arrays), std::invalid_argument);
    }
    {
        // json_diff of values deeper than the limit replaces the changed value whole at the limit, so that
        // json_patch takes every delta json_diff writes.
        auto [from, ignored] = nested(300);
        auto to = from;
        json* inner = &to;
        for (int i = 0; i < 300; ++i) inner = &(*inner)["a"];
        *inner = 2;
        const auto delta = krmx::json_diff(from, to);
        REQUIRE(delta.has_value());
        int depth = 0;
        for (const json* d = &*delta; d->is_object(); d = &(*d)["a"]) ++depth;
        CHECK(depth == 128);
        CHECK(patched(from, *delta) == to);
    }
}

TEST_CASE("one change deep in a large value is a delta of that change alone", "[core][json_delta]") {
    auto from = json::object();
    for (int i = 0; i < 2000; ++i)
        from[std::string{"k"}.append(std::to_string(i))] = json::array({i, "text", json{{"x", i}}});
    auto to = from;
    to["k1000"][2]["x"] = -1;
    CHECK(diff_of(from, to) == json::parse(R"({"k1000":{"_t":"a","2":{"x":[1000,-1]}}})"));
    CHECK(diff_of(to, from) == json::parse(R"({"k1000":{"_t":"a","2":{"x":[-1,1000]}}})"));
}

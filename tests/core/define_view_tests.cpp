// KRMX_DEFINE_VIEW and the tape writer behind it: a view written straight onto a tape must be byte for byte
// the tape of its JSON (JsonTape{nlohmann::json(view)}), for every kind of member: those written directly,
// those that go through their own to_json, in any order they are listed, with any content.
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/define_view.hpp>
#include <krmx/core/detail/json_tape.hpp>
#include <krmx/core/detail/tape_writer.hpp>

#include "catch.hpp"

namespace define_view_tests {

enum class Colour { red, green };
NLOHMANN_JSON_SERIALIZE_ENUM(Colour, {{Colour::red, "red"}, {Colour::green, "green"}})

// A type with a to_json of its own: written through it.
struct Custom {
    int x = 0;
};
inline void to_json(nlohmann::json& j, const Custom& c) { j = nlohmann::json::array({c.x, "custom"}); }
inline void from_json(const nlohmann::json& j, Custom& c) { c.x = j.at(0).get<int>(); }

// A type whose namespace has a to_json for a vector of it, which nlohmann picks over its own for arrays.
struct Tagged {
    int v = 0;
};
inline void to_json(nlohmann::json& j, const Tagged& t) { j = t.v; }
inline void from_json(const nlohmann::json& j, Tagged& t) { t.v = j.get<int>(); }
inline void to_json(nlohmann::json& j, const std::vector<Tagged>& ts) { j = nlohmann::json{{"count", ts.size()}}; }

struct Inner {
    int a = 0;
    std::string z;
    friend bool operator==(const Inner&, const Inner&) = default;
};
KRMX_DEFINE_VIEW(Inner, z, a)  // listed out of order: the object's keys are sorted all the same

// Nlohmann's macro: no writer of its own, so written through its to_json inside a view that has one.
struct Plain {
    std::vector<int> v;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Plain, v)

// A view type derived from another, with a to_json of its own that leaves out a member: nlohmann writes it
// through its own to_json, and so must the tape writer (not through the base's writer, which would show all).
struct PublicInner : Inner {};
inline void to_json(nlohmann::json& j, const PublicInner& p) { j = nlohmann::json{{"a", p.a}}; }

struct Everything {
    bool flag = false;
    short s = 0;
    int i = 0;
    long l = 0;
    long long ll = 0;
    unsigned short us = 0;
    unsigned u = 0;
    unsigned long ul = 0;
    unsigned long long ull = 0;
    float f = 0;
    double d = 0;
    char c = 0;
    unsigned char uc = 0;
    std::int8_t i8 = 0;
    std::string text;
    std::vector<int> numbers;
    std::vector<bool> bits;
    std::vector<Inner> inners;
    std::vector<std::vector<double>> grid;
    std::map<std::string, Inner> by_name;
    std::map<std::string, int, std::less<>> transparent;
    std::map<std::string, std::vector<std::optional<std::string>>> deep;
    std::optional<int> maybe;
    std::optional<Inner> maybe_inner;
    nlohmann::json any;
    Colour colour = Colour::red;
    Custom custom;
    Plain plain;
    std::vector<Custom> customs;
    std::vector<Tagged> tagged;
    std::map<std::string, Colour> colours;
    PublicInner public_inner;
    int Zed = 0;     // sorts before the lower-case names
    int _under = 0;  // and between them
};
KRMX_DEFINE_VIEW(Everything, flag, s, i, l, ll, us, u, ul, ull, f, d, c, uc, i8, text, numbers, bits, inners, grid,
                 by_name, transparent, deep, maybe, maybe_inner, any, colour, custom, plain, customs, tagged, colours, public_inner, Zed, _under)

// Random content, strings with escapes, non-ASCII and invalid UTF-8 included.
struct Random {
    std::mt19937_64 rng;
    int below(int n) { return std::uniform_int_distribution<int>{0, n - 1}(rng); }
    template <class T>
    T integer() {
        switch (below(4)) {
            case 0: return std::numeric_limits<T>::min();
            case 1: return std::numeric_limits<T>::max();
            case 2: return T{};
            default: return static_cast<T>(rng());
        }
    }
    double real() {
        switch (below(6)) {
            case 0: return -0.0;
            case 1: return std::numeric_limits<double>::infinity();
            case 2: return std::nan("");
            case 3: return 1e300;
            default: return std::uniform_real_distribution<double>{-1e6, 1e6}(rng);
        }
    }
    std::string text() {
        static const std::vector<std::string> pieces = {"a", "Z", "_", " ", "\"", "\\", "\n", "\x01", "\x7f",
                                                        "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff",
                                                        "\xc3", "\xed\xa0\x80", "/", "\t", "0"};
        std::string s;
        for (int k = below(6); k > 0; --k) s += pieces[static_cast<std::size_t>(below(static_cast<int>(pieces.size())))];
        return s;
    }
    Inner inner() { return {integer<int>(), text()}; }
    nlohmann::json json(int depth = 0) {
        switch (depth > 2 ? below(5) : below(7)) {
            case 0: return nullptr;
            case 1: return below(2) == 0;
            case 2: return integer<std::int64_t>();
            case 3: return integer<std::uint64_t>();
            case 4: return text();
            case 5: {
                auto a = nlohmann::json::array();
                for (int k = below(4); k > 0; --k) a.push_back(json(depth + 1));
                return a;
            }
            default: {
                auto o = nlohmann::json::object();
                for (int k = below(4); k > 0; --k) o[text()] = json(depth + 1);
                return o;
            }
        }
    }
    Everything everything() {
        Everything e;
        e.flag = below(2) == 0;
        e.s = integer<short>();
        e.i = integer<int>();
        e.l = integer<long>();
        e.ll = integer<long long>();
        e.us = integer<unsigned short>();
        e.u = integer<unsigned>();
        e.ul = integer<unsigned long>();
        e.ull = integer<unsigned long long>();
        e.f = static_cast<float>(real());
        e.d = real();
        e.c = static_cast<char>(rng());
        e.uc = static_cast<unsigned char>(rng());
        e.i8 = static_cast<std::int8_t>(rng());
        e.text = text();
        for (int k = below(4); k > 0; --k) e.numbers.push_back(integer<int>());
        for (int k = below(4); k > 0; --k) e.bits.push_back(below(2) == 0);
        for (int k = below(3); k > 0; --k) e.inners.push_back(inner());
        for (int k = below(3); k > 0; --k) e.grid.emplace_back(static_cast<std::size_t>(below(3)), real());
        for (int k = below(3); k > 0; --k) e.by_name[text()] = inner();
        for (int k = below(3); k > 0; --k) e.transparent[text()] = integer<int>();
        for (int k = below(3); k > 0; --k) {
            auto& list = e.deep[text()];
            for (int m = below(3); m > 0; --m) list.push_back(below(2) == 0 ? std::nullopt : std::optional{text()});
        }
        if (below(2) == 0) e.maybe = integer<int>();
        if (below(2) == 0) e.maybe_inner = inner();
        e.any = json();
        e.colour = below(2) == 0 ? Colour::red : Colour::green;
        e.custom.x = integer<int>();
        for (int k = below(3); k > 0; --k) e.plain.v.push_back(integer<int>());
        for (int k = below(3); k > 0; --k) e.customs.push_back(Custom{integer<int>()});
        for (int k = below(3); k > 0; --k) e.tagged.push_back(Tagged{integer<int>()});
        for (int k = below(3); k > 0; --k) e.colours[text()] = below(2) == 0 ? Colour::red : Colour::green;
        e.public_inner.a = integer<int>();
        e.public_inner.z = text();
        e.Zed = integer<int>();
        e._under = integer<int>();
        return e;
    }
};

template <class T>
krmx::detail::JsonTape written(const T& value) {
    krmx::detail::TapeWriter writer;
    krmx::detail::tape_write(writer, value);
    return std::move(writer).tape();
}

}  // namespace define_view_tests

using namespace define_view_tests;

TEST_CASE("define view: a view written onto a tape is the tape of its JSON, for any content", "[core][define_view]") {
    static_assert(krmx::detail::HasTapeWriter<Everything> && krmx::detail::HasTapeWriter<Inner>);
    static_assert(!krmx::detail::HasTapeWriter<Plain> && !krmx::detail::HasTapeWriter<PublicInner>);
    Random random{std::mt19937_64{20261208}};
    for (int n = 0; n < 2000; ++n) {
        const auto value = random.everything();
        const nlohmann::json tree = value;
        const auto fast = written(value);
        INFO(tree.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        REQUIRE(fast.bytes() == krmx::detail::JsonTape{tree}.bytes());
        REQUIRE(fast.text() == tree.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    // What is left at its defaults, and standard containers as whole views.
    CHECK(written(Everything{}).bytes() == krmx::detail::JsonTape{nlohmann::json(Everything{})}.bytes());
    const std::map<std::string, std::vector<Inner>> teams{{"b", {Inner{1, "x"}}}, {"a", {}}};
    CHECK(written(teams).bytes() == krmx::detail::JsonTape{nlohmann::json(teams)}.bytes());
    CHECK(written(nlohmann::json{{"k", 1}}).bytes() == krmx::detail::JsonTape{nlohmann::json{{"k", 1}}}.bytes());
}

TEST_CASE("define view: the JSON is nlohmann's macro's, and reads back", "[core][define_view]") {
    CHECK(nlohmann::json(std::vector<Tagged>{{1}, {2}}) == nlohmann::json{{"count", 2}});  // as the test above needs
    const Inner inner{7, "seven"};
    const nlohmann::json j = inner;
    CHECK(j == nlohmann::json{{"a", 7}, {"z", "seven"}});
    CHECK(j.get<Inner>() == inner);
    CHECK(written(inner).text() == R"({"a":7,"z":"seven"})");
}

// Random pairs of JSON values that share structure, for json_diff/json_patch: a value and a mutation of it
// (members changed, added and deleted, array elements inserted, removed, moved and changed, types changed,
// long strings edited). Used by json_delta_tests.cpp and by json_delta_peer.cpp (the side of the
// differential test with JavaScript that C++ generates).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/utf8.hpp>

namespace krmx_test {

struct JsonDeltaRandom {
    explicit JsonDeltaRandom(std::uint64_t seed) : rng(seed) {}

    std::mt19937_64 rng;
    /// Keys JavaScript mishandles are left out when the pairs go to JavaScript: "__proto__" (assigning it
    /// sets the prototype). "_t" and names of Object.prototype stay in: jsondiffpatch's patch copes with
    /// them (json_diff replaces an object whose "_t" changes).
    bool javascript_keys_only = false;

    std::uint64_t below(std::uint64_t n) { return rng() % n; }
    bool chance(std::uint64_t percent) { return below(100) < percent; }

    nlohmann::json number() {
        // Integers stay within +-2^53: JavaScript reads every JSON number as a double, so 2^53 + 1 would be
        // 2^53 there, and C++ and JavaScript would disagree on whether two values are equal.
        constexpr std::int64_t exact = std::int64_t{1} << 53;
        switch (below(9)) {
            case 0:
                return static_cast<std::int64_t>(below(21)) - 10;
            case 1:
                return static_cast<std::int64_t>(below(2'000'001)) - 1'000'000;
            case 2:
                return exact - static_cast<std::int64_t>(below(4));
            case 3:
                return -exact + static_cast<std::int64_t>(below(4));
            case 4:
                return static_cast<double>(static_cast<std::int64_t>(below(2001)) - 1000) /
                       8.0;  // 0.125 steps
            case 5:
                return std::ldexp(static_cast<double>(below(1u << 30)) - (1u << 29),
                                  static_cast<int>(below(200)) - 100);
            case 6: {
                static constexpr double specials[] = {-0.0,    0.1, 1e-300, 5e-324, 1.7976931348623157e308,
                                                      -2.5e21, 3.0};
                return specials[below(std::size(specials))];
            }
            case 7:
                return below(2) == 0 ? nlohmann::json(0) : nlohmann::json(0.0);
            default:
                return static_cast<std::int64_t>(below(100));
        }
    }

    std::string character() {
        static constexpr const char* chars[] = {"a",
                                                "b",
                                                "c",
                                                "x",
                                                "y",
                                                " ",
                                                "%",
                                                "\"",
                                                "\\",
                                                "/",
                                                "\n",
                                                "#",
                                                "+",
                                                "&",
                                                "=",
                                                "?",
                                                "\x01",
                                                "\xc3\xa9",
                                                "\xe4\xb8\xad",
                                                "\xf0\x9f\x98\x80",
                                                "\xf0\x9f\x98\x81",
                                                "\xef\xbf\xbf",
                                                "~",
                                                "'",
                                                "@",
                                                ",",
                                                ";",
                                                "."};
        return chars[below(std::size(chars))];
    }

    std::string string(bool long_one) {
        std::string out;
        if (long_one) {
            // Text with words, so that edits look like the edits of real text (and make small text diffs).
            static constexpr const char* words[] = {"the ",  "quick ", "brown ", "fox ",    "jumps ",
                                                    "over ", "lazy ",  "dog ",   "again, ", "naïve ",
                                                    "café ", "日本 ",  "😀 "};
            const auto n = 12 + below(30);
            for (std::uint64_t i = 0; i < n; ++i) out += words[below(std::size(words))];
            return out;
        }
        const auto n = below(8);
        for (std::uint64_t i = 0; i < n; ++i) out += character();
        return out;
    }

    std::string key() {
        static constexpr const char* keys[] = {"a",     "b",   "c",           "id",       "name",     "items",
                                               "score", "0",   "1",           "_1",       "_t",       "",
                                               "é",     "a b", "constructor", "toString", "__proto__"};
        for (;;) {
            std::string k = keys[below(std::size(keys))];
            if (javascript_keys_only && k == "__proto__") continue;
            return k;
        }
    }

    nlohmann::json scalar() {
        switch (below(6)) {
            case 0:
                return nullptr;
            case 1:
                return below(2) == 0;
            case 2:
            case 3:
                return number();
            default:
                return string(chance(20));
        }
    }

    nlohmann::json value(int depth) {
        const auto container = depth == 0 ? 90u : depth < 4 ? 40u : 0u;
        if (!chance(container)) return scalar();
        const auto n = below(depth == 0 ? 8 : 5);
        if (below(2) == 0) {
            auto array = nlohmann::json::array();
            for (std::uint64_t i = 0; i < n; ++i) array.push_back(value(depth + 1));
            return array;
        }
        auto object = nlohmann::json::object();
        for (std::uint64_t i = 0; i < n; ++i) object[key()] = value(depth + 1);
        return object;
    }

    static std::vector<std::string> characters_of(const std::string& text) {
        std::vector<std::string> out;
        for (std::size_t i = 0; i < text.size();) {
            std::size_t length =
                krmx::detail::utf8_sequence_length(text.data() + i, text.data() + text.size());
            if (length == 0) length = 1;
            out.push_back(text.substr(i, length));
            i += length;
        }
        return out;
    }

    // A long string edited in a few places (insertions, deletions, replacements at character boundaries).
    std::string edit(const std::string& text) {
        auto chars = characters_of(text);
        const auto edits = 1 + below(3);
        for (std::uint64_t e = 0; e < edits; ++e) {
            const auto at = below(chars.size() + 1);
            const auto length = std::min<std::uint64_t>(below(6), chars.size() - at);
            chars.erase(chars.begin() + static_cast<std::ptrdiff_t>(at),
                        chars.begin() + static_cast<std::ptrdiff_t>(at + length));
            const auto inserted = below(6);
            for (std::uint64_t i = 0; i < inserted; ++i) {
                chars.insert(chars.begin() + static_cast<std::ptrdiff_t>(at), character());
            }
        }
        std::string out;
        for (const auto& c : chars) out += c;
        return out;
    }

    nlohmann::json mutate(const nlohmann::json& v, int depth) {
        if (chance(10) || depth > 6) return value(depth + 1);  // replaced (often by another type)
        if (v.is_object()) {
            auto out = v;
            const auto ops = 1 + below(3);
            for (std::uint64_t op = 0; op < ops; ++op) {
                const auto r = below(10);
                if (out.empty() || r < 3) {
                    out[key()] = value(depth + 1);
                } else {
                    auto it = out.begin();
                    std::advance(it, static_cast<std::ptrdiff_t>(below(out.size())));
                    if (r < 5) {
                        out.erase(it);
                    } else {
                        *it = mutate(*it, depth + 1);
                    }
                }
            }
            return out;
        }
        if (v.is_array()) {
            auto out = v;
            auto& a = out.get_ref<nlohmann::json::array_t&>();
            const auto ops = 1 + below(4);
            for (std::uint64_t op = 0; op < ops; ++op) {
                const auto r = below(12);
                const auto at = [&](std::size_t extra) {
                    return a.begin() + static_cast<std::ptrdiff_t>(below(a.size() + extra));
                };
                if (a.empty() || r < 3) {
                    a.insert(at(1), value(depth + 1));
                } else if (r < 5) {
                    a.erase(at(0));
                } else if (r < 7) {  // moved
                    const auto from = at(0);
                    auto moved = std::move(*from);
                    a.erase(from);
                    a.insert(at(1), std::move(moved));
                } else if (r < 8) {  // duplicated
                    const auto from = below(a.size());
                    auto copy = a[from];
                    a.insert(at(1), std::move(copy));
                } else {
                    auto& element = *at(0);
                    element = mutate(element, depth + 1);
                }
            }
            return out;
        }
        if (v.is_string() && v.get_ref<const std::string&>().size() >= 60 && chance(80)) {
            return edit(v.get_ref<const std::string&>());
        }
        return chance(50) ? scalar() : value(depth + 1);
    }

    /// A value and another one: mostly a mutation of it (several rounds), sometimes itself or unrelated.
    std::pair<nlohmann::json, nlohmann::json> pair() {
        auto from = value(0);
        const auto r = below(20);
        if (r == 0) return {from, from};
        if (r == 1) return {from, value(0)};
        auto to = mutate(from, 0);
        for (auto rounds = below(3); rounds > 0; --rounds) to = mutate(to, 0);
        return {std::move(from), std::move(to)};
    }
};

}  // namespace krmx_test

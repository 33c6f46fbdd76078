// Agreement across parties: every text krmx's scanner accepts is read the same way by nlohmann/json (the
// C++ client) and by JavaScript's JSON.parse (the JavaScript clients), compared value by value (numbers
// by their double's bits, strings by their UTF-8 bytes). The texts are tricky by construction: escapes,
// surrogate pairs, raw UTF-8, subnormal and huge numbers, long mantissas, mutations of messages.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/detail/json_scan.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "temp_dir.hpp"

namespace {

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        out += digits[(static_cast<unsigned char>(c) >> 4) & 0xF];
        out += digits[static_cast<unsigned char>(c) & 0xF];
    }
    return out;
}

// The same canonical form as json_agreement.mjs.
std::string canon(const nlohmann::json& v) {
    switch (v.type()) {
        case nlohmann::json::value_t::null:
            return "null";
        case nlohmann::json::value_t::boolean:
            return v.get<bool>() ? "true" : "false";
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned:
        case nlohmann::json::value_t::number_float: {
            double d = v.get<double>();
            if (d == 0) d = 0;  // -0 as 0
            std::uint64_t bits = 0;
            std::memcpy(&bits, &d, sizeof bits);
            char out[24];
            std::snprintf(out, sizeof out, "n%016" PRIx64, bits);
            return out;
        }
        case nlohmann::json::value_t::string:
            return "s" + hex(v.get_ref<const std::string&>());
        case nlohmann::json::value_t::array: {
            std::string out = "[";
            for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + canon(v[i]);
            return out + "]";
        }
        case nlohmann::json::value_t::object: {
            std::vector<std::pair<std::string, std::string>> entries;
            for (const auto& [key, value] : v.items()) entries.emplace_back("s" + hex(key), canon(value));
            std::sort(entries.begin(), entries.end());
            std::string out = "{";
            for (std::size_t i = 0; i < entries.size(); ++i)
                out += (i ? "," : "") + entries[i].first + ":" + entries[i].second;
            return out + "}";
        }
        default:
            return "?";
    }
}

struct Generator {
    std::mt19937_64 rng{20261202};
    std::uint64_t below(std::uint64_t n) { return rng() % n; }

    std::string code_point_escape(std::uint32_t cp) {
        char out[16];
        if (cp >= 0x10000) {
            cp -= 0x10000;
            std::snprintf(out, sizeof out, "\\u%04x\\u%04X", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else {
            std::snprintf(out, sizeof out, "\\u%04x", cp);
        }
        return out;
    }
    std::string utf8(std::uint32_t cp) {
        std::string out;
        krmx::detail::append_utf8(out, cp);
        return out;
    }
    std::uint32_t code_point() {
        switch (below(5)) {
            case 0: return static_cast<std::uint32_t>(below(0x80));
            case 1: return static_cast<std::uint32_t>(0x80 + below(0x780));
            case 2: {
                std::uint32_t cp = static_cast<std::uint32_t>(0x800 + below(0xF800));
                return cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp;
            }
            case 3: return static_cast<std::uint32_t>(0x10000 + below(0x100000));
            default: return static_cast<std::uint32_t>(below(0x20));  // control characters: escaped
        }
    }
    std::string string() {
        std::string out = "\"";
        const auto n = below(8);
        for (std::uint64_t i = 0; i < n; ++i) {
            const auto cp = code_point();
            if (cp < 0x20 || cp == '"' || cp == '\\' || below(3) == 0) {
                static const char* shorts[] = {"\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r"};
                out += below(4) == 0 ? std::string{shorts[below(8)]} : code_point_escape(cp);
            } else {
                out += utf8(cp);
            }
        }
        return out + "\"";
    }
    std::string number() {
        char out[64];
        switch (below(7)) {
            case 0:
                std::snprintf(out, sizeof out, "%" PRId64,
                              static_cast<std::int64_t>(below(std::uint64_t{1} << 54)) - (std::int64_t{1} << 53));
                return out;
            case 1: {
                const double d = std::ldexp(static_cast<double>(rng() >> 11), static_cast<int>(below(2100)) - 1100);
                std::snprintf(out, sizeof out, "%.*g", static_cast<int>(1 + below(20)), below(2) ? d : -d);
                return out;
            }
            case 2:
                std::snprintf(out, sizeof out, "%" PRIu64 ".%" PRIu64 "e%d", below(100000), below(1000000000),
                              static_cast<int>(below(700)) - 350);
                return out;
            case 3:
                return "0.000000000000000000000" + std::to_string(rng()) + std::to_string(rng()) + "e-300";
            case 4:
                return std::to_string(rng() % 1000) + "." + std::to_string(rng()) + std::to_string(rng()) +
                       std::to_string(rng());
            case 5:
                std::snprintf(out, sizeof out, "%de%d", static_cast<int>(below(10)), static_cast<int>(below(330)));
                return out;
            default:
                return below(2) ? "-0" : "-0.0";
        }
    }
    std::string value(int depth) {
        switch (below(depth > 3 ? 4 : 6)) {
            case 0: return number();
            case 1: return string();
            case 2: return below(3) == 0 ? "null" : below(2) ? "true" : "false";
            case 3: return number();
            case 4: {
                std::string out = "[";
                const auto n = below(4);
                for (std::uint64_t i = 0; i < n; ++i) out += (i ? "," : "") + value(depth + 1);
                return out + "]";
            }
            default: {
                std::string out = "{";
                const auto n = below(4);
                for (std::uint64_t i = 0; i < n; ++i) out += (i ? "," : "") + string() + ":" + value(depth + 1);
                return out + "}";
            }
        }
    }
};

}  // namespace

TEST_CASE("every text the scanner accepts reads the same in nlohmann/json and in JavaScript's JSON.parse") {
    Generator gen;
    std::vector<std::string> texts = {
        R"({"type":"increment","payload":1,"x":"\ud83d\ude00\u00e9\u0000"})",
        R"([1e-320,4.9e-324,2.2250738585072014e-308,1.7976931348623157e308,9007199254740992,-9007199254740992])",
        R"([0.1,0.30000000000000004,123456789012345678901234567890e-10,1.00000000000000011102230246251565404236316680908203125])",
        R"({"\u0061":1,"b":{"\u00e9":[],"é2":{}}})",
    };
    for (int i = 0; i < 6000; ++i) texts.push_back(gen.value(0));
    krmx::testing::TempDir dir;
    const auto path = dir.path() / "accepted.jsonl";
    std::ofstream out{path};
    std::size_t accepted = 0;
    for (const auto& text : texts) {
        if (!krmx::detail::scan_value(text).empty()) continue;
        const auto dom = nlohmann::json::parse(text, nullptr, false);
        REQUIRE_FALSE(dom.is_discarded());
        out << nlohmann::json{{"text", text}, {"canon", canon(dom)}}.dump() << '\n';
        ++accepted;
    }
    out.close();
    CHECK(accepted > texts.size() / 2);  // the generator mostly writes valid JSON: the test has teeth
    krmx::testing::ChildProcess node{KRMX_NODE, {KRMX_AGREEMENT_SCRIPT, path.string()}};
    REQUIRE(node.read_to_end(std::chrono::seconds(120)));
    std::string report;
    for (const auto& line : node.lines()) report += line + "\n";
    INFO(report);
    CHECK(node.exited_cleanly());
    CHECK(report.find(std::to_string(accepted) + " agreed, 0 disagreed") != std::string::npos);
}

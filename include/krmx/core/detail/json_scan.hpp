#pragma once
// A validating JSON scanner that builds no DOM. It checks that a text is exactly one JSON value
// (RFC 8259: grammar, escapes, UTF-8) and hands out the raw text of an object's top-level members.
// Why: messages arrive as text, the server must re-send an event exactly as received (key order,
// number spelling), and building a nlohmann DOM for every message costs more than the rest of a
// dispatch. Only the small payload is then converted with nlohmann.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace krmx::detail {

struct JsonMember {
    std::string_view key;    ///< raw key text between the quotes (escapes not decoded)
    std::string_view value;  ///< raw value text, exactly as received
};

inline constexpr int json_max_depth = 512;

class JsonScanner {
  public:
    explicit JsonScanner(std::string_view text) noexcept
        : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

    // Validates exactly one object and collects its top-level members; when `nested_out` is given, also
    // the members of the top-level member `nested_key` if that is an object (one pass for both).
    [[nodiscard]] std::string object_members(std::vector<JsonMember>& out, std::string_view nested_key = {},
                                             std::vector<JsonMember>* nested_out = nullptr) {
        skip_ws();
        if (p_ == end_ || *p_ != '{') return fail("expected a JSON object");
        if (!object(1, &out, nested_key, nested_out)) return error_;
        skip_ws();
        if (p_ != end_) return fail("unexpected text after the JSON value");
        return {};
    }

    // Validates exactly one value of any kind.
    [[nodiscard]] std::string any_value() {
        skip_ws();
        if (!value(0)) return error_;
        skip_ws();
        if (p_ != end_) return fail("unexpected text after the JSON value");
        return {};
    }

  private:
    void skip_ws() noexcept {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }
    bool fail_bool(const char* what) {
        error_ = std::string{what} + " at byte " + std::to_string(p_ - begin_);
        return false;
    }
    std::string fail(const char* what) {
        fail_bool(what);
        return error_;
    }

    bool value(int depth) {
        if (p_ == end_) return fail_bool("unexpected end of JSON");
        switch (*p_) {
            case '{':
                return object(depth + 1);
            case '[':
                return array(depth + 1);
            case '"':
                return string();
            case 't':
                return literal("true");
            case 'f':
                return literal("false");
            case 'n':
                return literal("null");
            default:
                return number();
        }
    }

    bool literal(std::string_view word) {
        if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view{p_, word.size()} != word) {
            return fail_bool("invalid literal");
        }
        p_ += word.size();
        return true;
    }

    static bool digit(char c) noexcept { return c >= '0' && c <= '9'; }

    bool number() {
        if (p_ < end_ && *p_ == '-') ++p_;
        if (p_ == end_) return fail_bool("invalid number");
        if (*p_ == '0') {
            ++p_;
        } else if (digit(*p_)) {
            while (p_ < end_ && digit(*p_)) ++p_;
        } else {
            return fail_bool("invalid value");
        }
        if (p_ < end_ && *p_ == '.') {
            ++p_;
            if (p_ == end_ || !digit(*p_)) return fail_bool("invalid number: digits expected after '.'");
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || !digit(*p_))
                return fail_bool("invalid number: digits expected in the exponent");
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        return true;
    }

    // Bytes a string may contain without a second look: printable ASCII except '"' and '\\'.
    static const bool* plain_table() noexcept {
        static constexpr auto table = [] {
            struct Table {
                bool plain[256] = {};
            } t;
            for (int c = 0x20; c < 0x80; ++c) t.plain[c] = c != '"' && c != '\\';
            return t;
        }();
        return table.plain;
    }

    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    // One UTF-8 sequence starting at a byte >= 0x80: no overlong forms, no surrogates, at most U+10FFFF.
    bool utf8() {
        const auto b0 = static_cast<unsigned char>(*p_);
        int extra;
        std::uint32_t cp;
        if (b0 >= 0xC2 && b0 <= 0xDF) {
            extra = 1;
            cp = b0 & 0x1Fu;
        } else if (b0 >= 0xE0 && b0 <= 0xEF) {
            extra = 2;
            cp = b0 & 0x0Fu;
        } else if (b0 >= 0xF0 && b0 <= 0xF4) {
            extra = 3;
            cp = b0 & 0x07u;
        } else {
            return fail_bool("invalid UTF-8");
        }
        if (end_ - p_ <= extra) return fail_bool("invalid UTF-8: truncated sequence");
        for (int i = 1; i <= extra; ++i) {
            const auto b = static_cast<unsigned char>(p_[i]);
            if ((b & 0xC0u) != 0x80u) return fail_bool("invalid UTF-8");
            cp = (cp << 6) | (b & 0x3Fu);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return fail_bool("invalid UTF-8");
        }
        p_ += extra + 1;
        return true;
    }

    bool string() {
        if (p_ == end_ || *p_ != '"') return fail_bool("expected a string");
        ++p_;
        while (p_ < end_) {
            // The common case first: a run of printable ASCII that needs no further look. A local
            // cursor, because char reads may alias the member and would force a reload per byte.
            const char* p = p_;
            while (p < end_ && plain_table()[static_cast<unsigned char>(*p)]) ++p;
            p_ = p;
            if (p_ == end_) break;
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                return true;
            }
            if (c < 0x20) return fail_bool("control character in a string");
            if (c == '\\') {
                ++p_;
                if (p_ == end_) break;
                switch (*p_) {
                    case '"':
                    case '\\':
                    case '/':
                    case 'b':
                    case 'f':
                    case 'n':
                    case 'r':
                    case 't':
                        ++p_;
                        break;
                    case 'u':
                        ++p_;
                        if (end_ - p_ < 4) return fail_bool("invalid \\u escape");
                        for (int i = 0; i < 4; ++i) {
                            if (hex(p_[i]) < 0) return fail_bool("invalid \\u escape");
                        }
                        p_ += 4;
                        break;
                    default:
                        return fail_bool("invalid escape in a string");
                }
            } else if (c >= 0x80) {
                if (!utf8()) return false;
            } else {
                ++p_;
            }
        }
        return fail_bool("unterminated string");
    }

    bool object(int depth, std::vector<JsonMember>* out = nullptr, std::string_view nested_key = {},
                std::vector<JsonMember>* nested_out = nullptr) {
        if (depth > json_max_depth) return fail_bool("JSON nested too deeply");
        ++p_;
        skip_ws();
        if (p_ < end_ && *p_ == '}') {
            ++p_;
            return true;
        }
        for (;;) {
            skip_ws();
            const char* key_start = p_;
            if (!string()) return false;
            const std::string_view key{key_start + 1, static_cast<std::size_t>(p_ - key_start - 2)};
            skip_ws();
            if (p_ == end_ || *p_ != ':') return fail_bool("expected ':' after an object key");
            ++p_;
            skip_ws();
            const char* value_start = p_;
            if (out) {
                const bool nested = nested_out && key == nested_key && p_ < end_ && *p_ == '{';
                if (!(nested ? object(depth + 1, nested_out) : value(depth))) return false;
                out->push_back(JsonMember{key, {value_start, static_cast<std::size_t>(p_ - value_start)}});
            } else if (!value(depth)) {
                return false;
            }
            skip_ws();
            if (p_ < end_ && *p_ == ',') {
                ++p_;
                continue;
            }
            if (p_ < end_ && *p_ == '}') {
                ++p_;
                return true;
            }
            return fail_bool("expected ',' or '}' in an object");
        }
    }

    bool array(int depth) {
        if (depth > json_max_depth) return fail_bool("JSON nested too deeply");
        ++p_;
        skip_ws();
        if (p_ < end_ && *p_ == ']') {
            ++p_;
            return true;
        }
        for (;;) {
            skip_ws();
            if (!value(depth)) return false;
            skip_ws();
            if (p_ < end_ && *p_ == ',') {
                ++p_;
                continue;
            }
            if (p_ < end_ && *p_ == ']') {
                ++p_;
                return true;
            }
            return fail_bool("expected ',' or ']' in an array");
        }
    }

    const char* begin_;
    const char* p_;
    const char* end_;
    std::string error_;
};

/// Validates that `text` is exactly one JSON object and appends its top-level members, in order, to
/// `out`. Returns an empty string on success, else a readable error with the byte offset.
[[nodiscard]] inline std::string scan_object(std::string_view text, std::vector<JsonMember>& out) {
    return JsonScanner{text}.object_members(out);
}

/// As scan_object, and in the same pass the members of the nested object `nested_key` (left empty when
/// that member is absent or not an object): `{"type":..., "payload":{...}}` messages in one pass.
[[nodiscard]] inline std::string scan_object(std::string_view text, std::vector<JsonMember>& out,
                                             std::string_view nested_key,
                                             std::vector<JsonMember>& nested_out) {
    return JsonScanner{text}.object_members(out, nested_key, &nested_out);
}

/// Validates that `text` is exactly one JSON value; empty on success, else the error.
[[nodiscard]] inline std::string scan_value(std::string_view text) {
    return JsonScanner{text}.any_value();
}

/// The member with this key (compared raw: keys with escapes never match a plain key), or nullptr.
/// With duplicate keys the last one wins, as in nlohmann/json and JavaScript's JSON.parse.
[[nodiscard]] inline const JsonMember* find_member(const std::vector<JsonMember>& members,
                                                   std::string_view key) {
    for (auto it = members.rbegin(); it != members.rend(); ++it) {
        if (it->key == key) return &*it;
    }
    return nullptr;
}

/// The decoded text of a raw string value (quotes included); nothing when the value is not a string.
[[nodiscard]] inline std::optional<std::string> json_string_value(std::string_view raw) {
    if (raw.size() < 2 || raw.front() != '"') return std::nullopt;
    const std::string_view inner = raw.substr(1, raw.size() - 2);
    if (inner.find('\\') == std::string_view::npos) return std::string{inner};
    return nlohmann::json::parse(raw).get<std::string>();  // escapes are rare: let nlohmann decode them
}

/// The kind of a raw value, by its first character: "object", "array", "string", "number", ...
[[nodiscard]] inline std::string_view json_raw_kind(std::string_view raw) noexcept {
    if (raw.empty()) return "nothing";
    switch (raw.front()) {
        case '{':
            return "object";
        case '[':
            return "array";
        case '"':
            return "string";
        case 't':
        case 'f':
            return "boolean";
        case 'n':
            return "null";
        default:
            return "number";
    }
}

}  // namespace krmx::detail

#pragma once
// A validating JSON scanner that builds no DOM. It checks that a text is exactly one JSON value and hands
// out the raw text of an object's top-level members. Why: messages arrive as text, the server must re-send
// an event exactly as received (key order, number spelling), and building a nlohmann DOM for every message
// costs more than the rest of a dispatch. Only the small payload is then converted with nlohmann.
//
// The grammar is krmx's one grammar for everything on the wire: whatever the server accepts, nlohmann/json
// on a C++ client and JSON.parse in JavaScript must read the same way. So it is RFC 8259 (grammar, escapes,
// UTF-8, no byte order mark), narrowed where readers part ways:
// - numbers must be finite as a double (nlohmann refuses 1e400; JavaScript reads Infinity);
// - integers written without fraction or exponent must lie within +-2^53 (JavaScript rounds beyond it,
//   nlohmann does not);
// - \u escapes must form valid UTF-16: no lone surrogates (nlohmann refuses them, JavaScript keeps them);
// - an object may not repeat a key, compared after decoding escapes (readers differ on which one counts,
//   and `"p\u0061yload"` is `"payload"` to every reader but a raw comparison);
// - objects and arrays nest at most `max_depth` levels (events: json_max_event_depth; messages leave room
//   for their envelopes).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/short_equal.hpp"
#include "krmx/core/detail/utf8.hpp"

namespace krmx::detail {

struct JsonMember {
    JsonMember() = default;
    JsonMember(std::string_view key_, std::string_view value_, bool key_escaped_, std::uint16_t depth_ = 0,
               std::uint32_t first_child_ = 0, std::uint32_t child_count_ = 0) noexcept
        : key(key_), value(value_), key_escaped(key_escaped_), depth(depth_), first_child(first_child_),
          child_count(child_count_) {}

    std::string_view key;      ///< raw key text between the quotes (escapes not decoded)
    std::string_view value;    ///< raw value text, exactly as received
    bool key_escaped = false;  ///< the key has escapes: compare it decoded
    /// How deep the value nests: 0 for a scalar, 1 for `{}`, `[1]` or `{"a":1}`, 2 for `[[1]]`, ...
    std::uint16_t depth = 0;
    /// For a member whose value is an object and whose members were collected (see ScannedMessage): where
    /// they are in ScannedMessage::children.
    std::uint32_t first_child = 0;
    std::uint32_t child_count = 0;
};

/// A message `{"type": ..., "payload": ...}` scanned in one pass: its members, the members of its payload
/// (when the payload is an object), and the members of every object in the payload (a `stream/append`'s
/// event, a `projection/action`'s action), so that nobody downstream reads the text again.
struct ScannedMessage {
    std::vector<JsonMember> members;
    std::vector<JsonMember> payload;
    std::vector<JsonMember> children;

    void clear() noexcept {
        members.clear();
        payload.clear();
        children.clear();
    }
};

/// How deep an event (the event object itself is level 1) may nest: deep enough for any game state,
/// shallow enough that the envelopes around it never push a message past a reader's limit.
inline constexpr int json_max_event_depth = 128;
/// The deepest envelope around an event: a history (message, payload, events array, entry).
inline constexpr int json_envelope_depth = 4;
/// How deep a whole message may nest.
inline constexpr int json_max_message_depth = json_max_event_depth + json_envelope_depth;

/// The largest integer every reader holds exactly (JavaScript numbers are doubles).
inline constexpr std::uint64_t json_max_exact_integer = std::uint64_t{1} << 53;

/// Appends one code point (at most U+10FFFF, not a surrogate) as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

/// Decodes the inside of a string literal that the scanner validated (escapes well formed, surrogates
/// paired) into UTF-8.
inline void json_unescape(std::string_view inner, std::string& out) {
    const auto hex4 = [](const char* p) {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = p[i];
            v = v * 16 + static_cast<std::uint32_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        return v;
    };
    out.reserve(out.size() + inner.size());
    for (std::size_t i = 0; i < inner.size(); ++i) {
        const char c = inner[i];
        if (c != '\\' || i + 1 >= inner.size()) {
            out += c;
            continue;
        }
        const char e = inner[++i];
        switch (e) {
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                if (i + 4 >= inner.size()) return;  // validated text always has four digits
                std::uint32_t cp = hex4(inner.data() + i + 1);
                i += 4;
                // A high surrogate is followed by its low half (validated): join them.
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < inner.size() && inner[i + 1] == '\\') {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(inner.data() + i + 3) - 0xDC00);
                    i += 6;
                }
                append_utf8(out, cp);
                break;
            }
            default: out += e; break;  // '"', '\\', '/'
        }
    }
}

class JsonScanner {
  public:
    explicit JsonScanner(std::string_view text, int max_depth = json_max_event_depth) noexcept
        : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), max_depth_(max_depth) {}

    // Validates exactly one object and collects its top-level members; when `nested_out` is given, also
    // the members of the top-level member `nested_key` if that is an object (one pass for both).
    [[nodiscard]] std::string object_members(std::vector<JsonMember>& out, std::string_view nested_key = {},
                                             std::vector<JsonMember>* nested_out = nullptr) {
        return top_object(Collect{&out, nested_key, nested_out});
    }

    // Validates exactly one object and collects it as a message (see ScannedMessage).
    [[nodiscard]] std::string message(ScannedMessage& out) {
        return top_object(Collect{&out.members, "payload", &out.payload, nullptr, &out.children});
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
    // What an object's members are collected into: `out` (none: validated only); the members of each
    // member that is an object into `children` (their range kept on the member); the members of the
    // member `nested_key` (when it is an object) into `nested_out`, and theirs into `nested_children`.
    struct Collect {
        std::vector<JsonMember>* out = nullptr;
        std::string_view nested_key = {};
        std::vector<JsonMember>* nested_out = nullptr;
        std::vector<JsonMember>* children = nullptr;
        std::vector<JsonMember>* nested_children = nullptr;
    };

    std::string top_object(const Collect& collect) {
        skip_ws();
        if (p_ == end_ || *p_ != '{') return fail("expected a JSON object");
        if (!object(1, collect)) return error_;
        skip_ws();
        if (p_ != end_) return fail("unexpected text after the JSON value");
        return {};
    }

    KRMX_ALWAYS_INLINE void skip_ws() noexcept {
        // Compact JSON (what every krmx writer sends) has no whitespace: one comparison says so.
        if (p_ == end_ || static_cast<unsigned char>(*p_) > ' ') return;
        const char* p = p_;
        while (p < end_ && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
        p_ = p;
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
        const char* start = p_;
        if (p_ < end_ && *p_ == '-') ++p_;
        if (p_ == end_) return fail_bool("invalid number");
        const char* digits = p_;
        if (*p_ == '0') {
            ++p_;
        } else if (digit(*p_)) {
            while (p_ < end_ && digit(*p_)) ++p_;
        } else {
            return fail_bool("invalid value");
        }
        const std::size_t integer_digits = static_cast<std::size_t>(p_ - digits);
        bool plain_integer = true;
        if (p_ < end_ && *p_ == '.') {
            plain_integer = false;
            ++p_;
            if (p_ == end_ || !digit(*p_)) return fail_bool("invalid number: digits expected after '.'");
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            plain_integer = false;
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (p_ == end_ || !digit(*p_))
                return fail_bool("invalid number: digits expected in the exponent");
            while (p_ < end_ && digit(*p_)) ++p_;
        }
        // Most numbers are short integers: nothing more to check.
        if (plain_integer && integer_digits <= 15) return true;
        return number_in_range(start, plain_integer, digits, integer_digits);
    }

    bool number_in_range(const char* start, bool plain_integer, const char* digits, std::size_t count) {
        if (plain_integer) {
            std::uint64_t v = 0;
            const auto [end, ec] = std::from_chars(digits, digits + count, v);
            if (ec != std::errc{} || end != digits + count || v > json_max_exact_integer)
                return fail_bool("integer out of range: at most 2^53 is read alike by every reader");
            return true;
        }
        double d = 0;
        const auto [end, ec] = std::from_chars(start, p_, d);
        if (ec == std::errc::result_out_of_range) {
            // Out of range either way: too large (infinite: refused) or too small (0 to every reader).
            // The decimal exponent of the first significant digit tells which.
            if (decimal_exponent(start) > 0) return fail_bool("number out of range: not a finite double");
            return true;
        }
        if (ec != std::errc{} || end != p_ || !std::isfinite(d))
            return fail_bool("number out of range: not a finite double");
        return true;
    }

    // The power of ten of the first significant digit of the number [start, p_): 2 for 123.4, -3 for 0.001.
    long long decimal_exponent(const char* start) const {
        const char* q = start + (*start == '-');
        long long integer_digits = 0;
        long long index = 0;  // of the digit, counted over the digits only
        long long first = -1;
        bool after_point = false;
        for (; q < p_ && *q != 'e' && *q != 'E'; ++q) {
            if (*q == '.') {
                after_point = true;
                continue;
            }
            if (!after_point) ++integer_digits;
            if (first < 0 && *q != '0') first = index;
            ++index;
        }
        if (first < 0) return 0;  // zero
        long long exponent = 0;
        if (q < p_) {
            ++q;
            const bool negative = *q == '-';
            if (*q == '+' || *q == '-') ++q;
            for (; q < p_; ++q) {
                if (exponent < 1000000000) exponent = exponent * 10 + (*q - '0');
            }
            if (negative) exponent = -exponent;
        }
        return integer_digits - 1 - first + exponent;
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

    // Four hex digits at p_ (advanced past them), or -1.
    int hex4() noexcept {
        if (end_ - p_ < 4) return -1;
        int v = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = hex(p_[i]);
            if (h < 0) return -1;
            v = v * 16 + h;
        }
        p_ += 4;
        return v;
    }

    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    // One UTF-8 sequence starting at a byte >= 0x80 (core/detail/utf8.hpp: the one rule).
    bool utf8() {
        const std::size_t length = utf8_sequence_length(p_, end_);
        if (length == 0) return fail_bool("invalid UTF-8");
        p_ += length;
        return true;
    }

    bool string() {
        if (p_ == end_ || *p_ != '"') return fail_bool("expected a string");
        ++p_;
        escaped_ = false;
        while (p_ < end_) {
            // The common case first: a run of printable ASCII that needs no further look. A local
            // cursor, because char reads may alias the member and would force a reload per byte. (Eight
            // bytes at a time costs more than it saves: keys and names are short.)
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
                        escaped_ = true;
                        break;
                    case 'u': {
                        ++p_;
                        const int unit = hex4();
                        if (unit < 0) return fail_bool("invalid \\u escape");
                        if (unit >= 0xDC00 && unit <= 0xDFFF) return fail_bool("lone surrogate in a \\u escape");
                        if (unit >= 0xD800 && unit <= 0xDBFF) {
                            // The high half of a pair: the low half must follow at once.
                            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
                                return fail_bool("lone surrogate in a \\u escape");
                            p_ += 2;
                            const int low = hex4();
                            if (low < 0xDC00 || low > 0xDFFF) return fail_bool("lone surrogate in a \\u escape");
                        }
                        escaped_ = true;
                        break;
                    }
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

    struct Key {
        std::string_view raw;  // between the quotes
        bool escaped;
    };

    static std::string decoded(const Key& key) {
        std::string out;
        json_unescape(key.raw, out);
        return out;
    }
    static bool same_key(const Key& a, const Key& b) {
        if (!a.escaped && !b.escaped) return short_equal(a.raw, b.raw);
        return decoded(a) == decoded(b);
    }

    // Whether an object's keys repeat, compared as every reader compares them: decoded.
    static bool repeats(const Key* local, std::size_t n, const std::vector<Key>& more) {
        if (more.empty()) {
            for (std::size_t i = 1; i < n; ++i) {
                for (std::size_t j = 0; j < i; ++j) {
                    if (local[i].raw.size() == local[j].raw.size() || local[i].escaped || local[j].escaped) {
                        if (same_key(local[i], local[j])) return true;
                    }
                }
            }
            return false;
        }
        std::vector<std::string> all;
        all.reserve(n + more.size());
        for (std::size_t i = 0; i < n; ++i) all.push_back(decoded(local[i]));
        for (const auto& key : more) all.push_back(decoded(key));
        std::sort(all.begin(), all.end());
        return std::adjacent_find(all.begin(), all.end()) != all.end();
    }

    bool object(int depth) { return object(depth, Collect{}); }
    bool object(int depth, const Collect& collect) {
        if (depth > max_depth_) return fail_bool("JSON nested too deeply");
        if (depth > deepest_) deepest_ = depth;
        ++p_;
        skip_ws();
        if (p_ < end_ && *p_ == '}') {
            ++p_;
            return true;
        }
        // Keys seen so far: a few on the stack (envelopes, small structs), the rest on the heap.
        constexpr std::size_t local_keys = 8;
        Key local[local_keys];
        std::size_t count = 0;
        std::vector<Key> more;
        // Keys of distinct lengths without escapes cannot repeat: then there is nothing to compare.
        std::uint64_t key_lengths = 0;
        bool maybe_repeated = false;
        for (;;) {
            skip_ws();
            const char* key_start = p_;
            if (!string()) return false;
            const std::string_view key{key_start + 1, static_cast<std::size_t>(p_ - key_start - 2)};
            const bool key_escaped = escaped_;
            if (key_escaped || key.size() >= 64) {
                maybe_repeated = true;
            } else {
                const std::uint64_t length_bit = std::uint64_t{1} << key.size();
                maybe_repeated = maybe_repeated || (key_lengths & length_bit) != 0;
                key_lengths |= length_bit;
            }
            if (count < local_keys) {
                // Field by field: a Key built whole in a temporary is copied with one wide load of two
                // narrow stores, which stalls store forwarding (most of a scan's time, measured).
                local[count].raw = key;
                local[count].escaped = key_escaped;
                ++count;
            } else {
                more.push_back(Key{key, key_escaped});
            }
            skip_ws();
            if (p_ == end_ || *p_ != ':') return fail_bool("expected ':' after an object key");
            ++p_;
            skip_ws();
            const char* value_start = p_;
            if (collect.out) {
                const int deepest_before = deepest_;
                deepest_ = depth;
                const bool is_object = p_ < end_ && *p_ == '{';
                std::uint32_t first_child = 0;
                std::uint32_t child_count = 0;
                bool ok;
                if (is_object && collect.nested_out &&
                    (key_escaped ? decoded(Key{key, true}) == collect.nested_key
                                 : short_equal(key, collect.nested_key))) {
                    ok = object(depth + 1, Collect{collect.nested_out, {}, nullptr, collect.nested_children});
                } else if (is_object && collect.children) {
                    first_child = static_cast<std::uint32_t>(collect.children->size());
                    ok = object(depth + 1, Collect{collect.children});
                    child_count = static_cast<std::uint32_t>(collect.children->size()) - first_child;
                } else {
                    ok = value(depth);
                }
                if (!ok) return false;
                const auto member_depth = static_cast<std::uint16_t>(deepest_ - depth);
                if (deepest_before > deepest_) deepest_ = deepest_before;
                // Built in place from its parts: a member written field by field and then copied whole
                // stalls on the copy's wide load of the narrow stores (measured: most of a scan's time).
                collect.out->emplace_back(key, std::string_view{value_start, static_cast<std::size_t>(p_ - value_start)},
                                          key_escaped, member_depth, first_child, child_count);
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
                if (maybe_repeated && repeats(local, count, more)) return fail_bool("repeated key in an object");
                return true;
            }
            return fail_bool("expected ',' or '}' in an object");
        }
    }

    bool array(int depth) {
        if (depth > max_depth_) return fail_bool("JSON nested too deeply");
        if (depth > deepest_) deepest_ = depth;
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
    int max_depth_;
    int deepest_ = 0;       // the deepest level reached so far (for the members' depths)
    bool escaped_ = false;  // whether the last string scanned had an escape
    std::string error_;
};

/// Validates that `text` is exactly one JSON object and appends its top-level members, in order, to
/// `out`. Returns an empty string on success, else a readable error with the byte offset.
[[nodiscard]] inline std::string scan_object(std::string_view text, std::vector<JsonMember>& out,
                                             int max_depth = json_max_event_depth) {
    return JsonScanner{text, max_depth}.object_members(out);
}

/// As scan_object, and in the same pass the members of the nested object `nested_key` (left empty when
/// that member is absent or not an object): `{"type":..., "payload":{...}}` messages in one pass.
[[nodiscard]] inline std::string scan_object(std::string_view text, std::vector<JsonMember>& out,
                                             std::string_view nested_key, std::vector<JsonMember>& nested_out,
                                             int max_depth = json_max_message_depth) {
    return JsonScanner{text, max_depth}.object_members(out, nested_key, &nested_out);
}

/// Validates that `text` is exactly one JSON object and scans it as a message (see ScannedMessage): `out`
/// is cleared first. Returns an empty string on success, else a readable error with the byte offset.
[[nodiscard]] inline std::string scan_message(std::string_view text, ScannedMessage& out,
                                              int max_depth = json_max_message_depth) {
    out.clear();
    return JsonScanner{text, max_depth}.message(out);
}

/// Validates that `text` is exactly one JSON value; empty on success, else the error.
[[nodiscard]] inline std::string scan_value(std::string_view text, int max_depth = json_max_event_depth) {
    return JsonScanner{text, max_depth}.any_value();
}

/// Whether a scanned member's key is `key`, compared as decoded text.
[[nodiscard]] inline bool key_is(const JsonMember& member, std::string_view key) {
    if (!member.key_escaped) return short_equal(member.key, key);
    std::string decoded;
    json_unescape(member.key, decoded);
    return decoded == key;
}

/// The member with this key, compared as decoded text, or nullptr. Keys never repeat in scanned text.
[[nodiscard]] inline const JsonMember* find_member(std::span<const JsonMember> members, std::string_view key) {
    for (const auto& member : members) {
        if (key_is(member, key)) return &member;
    }
    return nullptr;
}

/// The decoded text of a raw, scanned string value (quotes included); nothing when it is not a string.
[[nodiscard]] inline std::optional<std::string> json_string_value(std::string_view raw) {
    if (raw.size() < 2 || raw.front() != '"') return std::nullopt;
    const std::string_view inner = raw.substr(1, raw.size() - 2);
    if (inner.find('\\') == std::string_view::npos) return std::string{inner};
    std::string out;
    json_unescape(inner, out);
    return out;
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

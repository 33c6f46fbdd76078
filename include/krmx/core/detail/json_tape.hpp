#pragma once
// krmx::detail::JsonTape: a JSON value written into one contiguous buffer, and json_diff between two of
// them. A projection keeps the view each user holds until the next action: with 800 users, the trees of
// nodes that nlohmann::json builds have gone cold in the cache by then, and walking one to diff it costs a
// cache miss per node (a profile of the projection benchmark put 40-45% of its time in walking, hashing,
// comparing and freeing such trees). A tape is read front to back from a few cache lines, compared with
// memcmp, hashed in one pass and freed in one call.
//
// Equal tapes are equal values. Unequal tapes may still be equal values (1 and 1.0, 0 and -0.0): tape_diff
// says, and writes the text of exactly the delta json_diff gives for the values they hold, straight from the
// two tapes (the delta is sent as text; building it as a tree and dumping that cost a fifth of an action).

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/json_delta.hpp"

namespace krmx::detail {

// Each value is a tag byte and what follows it:
//   n f t x        null, false, true, discarded: nothing
//   i u d          int64, uint64, double: 8 bytes
//   s              u32 length, the bytes
//   b              u8 has subtype, u64 subtype, u32 length, the bytes
//   a              u32 count, u32 length of what follows, the elements
//   o              u32 count, u32 length of what follows, each member as u32 key length, key, value
// Numbers are in the machine's byte order: a tape never leaves the process.
class JsonTape {
  public:
    /// The tape of null.
    JsonTape() : bytes_(1, 'n') {}
    /// Throws std::length_error for a value with a string, an array or an object of 4 GiB or more.
    explicit JsonTape(const nlohmann::json& value) { write(value); }

    [[nodiscard]] std::string_view bytes() const noexcept { return bytes_; }
    /// The value again, with the same types (an integer stays an integer, a double a double).
    [[nodiscard]] nlohmann::json value() const;
    /// The value's JSON text, as value().dump(-1, ' ', false, error_handler_t::replace) writes it.
    [[nodiscard]] std::string text() const;
    [[nodiscard]] std::size_t hash() const noexcept { return std::hash<std::string_view>{}(bytes_); }
    friend bool operator==(const JsonTape& a, const JsonTape& b) noexcept { return a.bytes_ == b.bytes_; }

    /// A length or count as the tape holds it.
    static std::uint32_t u32(std::size_t n) {
        if (n > std::numeric_limits<std::uint32_t>::max()) {
            throw std::length_error("krmx::detail::JsonTape: a string, array or object of 4 GiB or more");
        }
        return static_cast<std::uint32_t>(n);
    }
    /// Appends the tape of `value` to `out`.
    static void append(std::string& out, const nlohmann::json& value) {
        const auto at = out.size();
        out.resize(at + extent(value));
        write(out.data() + at, value);
    }
    /// The tape made of `bytes`, which a TapeWriter wrote.
    [[nodiscard]] static JsonTape adopt(std::string bytes) noexcept {
        JsonTape tape;
        tape.bytes_ = std::move(bytes);
        return tape;
    }

  private:
    // The tape is measured first and then written into a buffer of exactly that size: appending piece by
    // piece cost more than the second walk over a tree that was just built and is still in the cache.
    void write(const nlohmann::json& value) { append(bytes_, value); }
    // The bytes `value` takes; every length the tape will hold is checked here.
    static std::size_t extent(const nlohmann::json& value) {
        using T = nlohmann::json::value_t;
        switch (value.type()) {
            case T::number_integer:
            case T::number_unsigned:
            case T::number_float:
                return 9;
            case T::string:
                return 5 + u32(value.get_ref<const std::string&>().size());
            case T::binary:
                return 14 + u32(value.get_binary().size());
            case T::array: {
                std::size_t n = 0;
                for (const auto& element : value.get_ref<const nlohmann::json::array_t&>())
                    n += extent(element);
                return 9 + u32(n);  // (the count is at most the length: every element takes a byte or more)
            }
            case T::object: {
                std::size_t n = 0;
                for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
                    n += 4 + u32(key.size()) + extent(member);
                }
                return 9 + u32(n);  // (and so is the count of members)
            }
            default:
                return 1;
        }
    }
    template <class V>
    static char* put(char* p, V v) noexcept {
        std::memcpy(p, &v, sizeof v);
        return p + sizeof v;
    }
    static char* put_u32(char* p, std::size_t n) noexcept { return put(p, static_cast<std::uint32_t>(n)); }
    static char* put_bytes(char* p, const void* data, std::size_t n) noexcept {
        if (n > 0) std::memcpy(p, data, n);
        return p + n;
    }
    static char* write(char* p, const nlohmann::json& value) noexcept {
        using T = nlohmann::json::value_t;
        switch (value.type()) {
            case T::null:
                *p = 'n';
                return p + 1;
            case T::boolean:
                *p = value.get_ref<const bool&>() ? 't' : 'f';
                return p + 1;
            case T::number_integer:
                *p = 'i';
                return put(p + 1, value.get_ref<const std::int64_t&>());
            case T::number_unsigned:
                *p = 'u';
                return put(p + 1, value.get_ref<const std::uint64_t&>());
            case T::number_float:
                *p = 'd';
                return put(p + 1, value.get_ref<const double&>());
            case T::string: {
                const auto& s = value.get_ref<const std::string&>();
                *p = 's';
                return put_bytes(put_u32(p + 1, s.size()), s.data(), s.size());
            }
            case T::binary: {
                const auto& b = value.get_binary();
                *p = 'b';
                p = put(p + 1, static_cast<std::uint8_t>(b.has_subtype() ? 1 : 0));
                p = put(p, static_cast<std::uint64_t>(b.has_subtype() ? b.subtype() : 0));
                return put_bytes(put_u32(p, b.size()), b.data(), b.size());
            }
            case T::array:
            case T::object: {
                *p = value.is_array() ? 'a' : 'o';
                char* const length_at = put_u32(p + 1, value.size());
                char* q = length_at + 4;
                if (value.is_array()) {
                    for (const auto& element : value.get_ref<const nlohmann::json::array_t&>())
                        q = write(q, element);
                } else {
                    for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
                        q = write(put_bytes(put_u32(q, key.size()), key.data(), key.size()), member);
                    }
                }
                put_u32(length_at, static_cast<std::size_t>(q - length_at - 4));
                return q;
            }
            case T::discarded:
                *p = 'x';
                return p + 1;
        }
        return p;
    }

    std::string bytes_;
};

// Reading: a value is the string_view of exactly its bytes.

[[nodiscard]] inline std::uint32_t tape_u32(const char* p) noexcept {
    std::uint32_t v = 0;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// How many bytes the value starting at `p` takes.
[[nodiscard]] inline std::size_t tape_extent(const char* p) noexcept {
    switch (*p) {
        case 'i':
        case 'u':
        case 'd':
            return 9;
        case 's':
            return 5 + std::size_t{tape_u32(p + 1)};
        case 'b':
            return 1 + 1 + 8 + 4 + std::size_t{tape_u32(p + 10)};
        case 'a':
        case 'o':
            return 9 + std::size_t{tape_u32(p + 5)};
        default:
            return 1;
    }
}

// The members of an object value, in key order.
class TapeMembers {
  public:
    explicit TapeMembers(std::string_view object) noexcept
        : p_(object.data() + 9), left_(tape_u32(object.data() + 1)) {}
    [[nodiscard]] bool done() const noexcept { return left_ == 0; }
    [[nodiscard]] std::string_view key() const noexcept { return {p_ + 4, tape_u32(p_)}; }
    [[nodiscard]] std::string_view value() const noexcept {
        const char* v = p_ + 4 + tape_u32(p_);
        return {v, tape_extent(v)};
    }
    void next() noexcept {
        const auto v = value();
        p_ = v.data() + v.size();
        --left_;
    }

  private:
    const char* p_;
    std::uint32_t left_;
};

[[nodiscard]] inline nlohmann::json tape_read(std::string_view value) {
    const char* p = value.data();
    const auto scalar = [p]<class T>(T v) {
        std::memcpy(&v, p + 1, sizeof v);
        return nlohmann::json(v);
    };
    switch (*p) {
        case 'f':
            return false;
        case 't':
            return true;
        case 'x':
            return nlohmann::json(nlohmann::json::value_t::discarded);
        case 'i':
            return scalar(std::int64_t{});
        case 'u':
            return scalar(std::uint64_t{});
        case 'd':
            return scalar(double{});
        case 's':
            return std::string{p + 5, tape_u32(p + 1)};
        case 'b': {
            const auto* data = reinterpret_cast<const std::uint8_t*>(p + 14);
            nlohmann::json::binary_t::container_type bytes(data, data + tape_u32(p + 10));
            std::uint64_t subtype = 0;
            std::memcpy(&subtype, p + 2, sizeof subtype);
            return p[1] ? nlohmann::json::binary(std::move(bytes), subtype)
                        : nlohmann::json::binary(std::move(bytes));
        }
        case 'a': {
            auto out = nlohmann::json::array();
            auto& elements = out.get_ref<nlohmann::json::array_t&>();
            const std::uint32_t count = tape_u32(p + 1);
            elements.reserve(count);
            const char* e = p + 9;
            for (std::uint32_t k = 0; k < count; ++k) {
                const auto extent = tape_extent(e);
                elements.push_back(tape_read({e, extent}));
                e += extent;
            }
            return out;
        }
        case 'o': {
            auto out = nlohmann::json::object();
            auto& members = out.get_ref<nlohmann::json::object_t&>();
            for (TapeMembers m{value}; !m.done(); m.next()) {
                members.emplace_hint(members.end(), std::string{m.key()}, tape_read(m.value()));
            }
            return out;
        }
        default:
            return nullptr;
    }
}

inline nlohmann::json JsonTape::value() const {
    return tape_read(bytes_);
}

// The text of a tape value, byte for byte what nlohmann's dump(-1, ' ', false, replace) writes for its value:
// numbers and plain strings here, anything nlohmann formats in its own way (doubles, escapes, invalid UTF-8,
// binary) by nlohmann.
inline void tape_dump_json(std::string& out, const nlohmann::json& value) {
    out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
inline void tape_dump_string(std::string& out, std::string_view s) {
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') {
            tape_dump_json(out, nlohmann::json(std::string{s}));
            return;
        }
    }
    out += '"';
    out += s;
    out += '"';
}
template <class T>
void tape_dump_integer(std::string& out, const char* p) {
    T v{};
    std::memcpy(&v, p + 1, sizeof v);
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out.append(digits, end);
}
inline void tape_dump(std::string& out, std::string_view value) {
    const char* p = value.data();
    switch (*p) {
        case 'n':
            out += "null";
            return;
        case 't':
            out += "true";
            return;
        case 'f':
            out += "false";
            return;
        case 'i':
            tape_dump_integer<std::int64_t>(out, p);
            return;
        case 'u':
            tape_dump_integer<std::uint64_t>(out, p);
            return;
        case 's':
            tape_dump_string(out, {p + 5, tape_u32(p + 1)});
            return;
        case 'a': {
            out += '[';
            const std::uint32_t count = tape_u32(p + 1);
            const char* e = p + 9;
            for (std::uint32_t k = 0; k < count; ++k) {
                if (k > 0) out += ',';
                const auto extent = tape_extent(e);
                tape_dump(out, {e, extent});
                e += extent;
            }
            out += ']';
            return;
        }
        case 'o': {
            out += '{';
            for (TapeMembers m{value}; !m.done(); m.next()) {
                if (out.back() != '{') out += ',';
                tape_dump_string(out, m.key());
                out += ':';
                tape_dump(out, m.value());
            }
            out += '}';
            return;
        }
        default:
            tape_dump_json(out, tape_read(value));
    }
}

inline std::string JsonTape::text() const {
    std::string out;
    out.reserve(bytes_.size());
    tape_dump(out, bytes_);
    return out;
}

// The text of delta_replaced(from, to).
inline void tape_dump_replaced(std::string& out, std::string_view from, std::string_view to) {
    out += '[';
    tape_dump(out, from);
    out += ',';
    tape_dump(out, to);
    out += ']';
}

// The deltas of the members of top-level objects, kept through one batch of diffs: users whose views differ
// (each holds its own hand) but whose public parts changed alike (the table) get the delta of such a part
// diffed once. It keeps views of the tapes it saw: they must outlive it.
struct TapeDiffCache {
    struct Entry {
        std::string_view from;
        std::string_view to;
        std::optional<std::string> delta;  // none: equal by value
    };
    std::unordered_multimap<std::size_t, Entry> entries;
    std::uint64_t hits = 0;
};

inline bool tape_diff_value(std::string& out, std::string_view from, std::string_view to, int level,
                            TapeDiffCache* cache = nullptr);

// tape_diff_value of a member of two top-level objects, through the cache (a delta does not name its member).
inline bool tape_diff_member(std::string& out, TapeDiffCache& cache, std::string_view from, std::string_view to,
                             int level) {
    const std::hash<std::string_view> hash_of;
    const auto hash = hash_of(from) * 31 + hash_of(to);
    for (auto [it, end] = cache.entries.equal_range(hash); it != end; ++it) {
        const auto& entry = it->second;
        if (entry.from == from && entry.to == to) {
            ++cache.hits;
            if (!entry.delta) return false;
            out += *entry.delta;
            return true;
        }
    }
    const auto start = out.size();
    const bool changed = tape_diff_value(out, from, to, level);
    cache.entries.emplace(hash, TapeDiffCache::Entry{from, to, changed ? std::optional{out.substr(start)} : std::nullopt});
    return changed;
}

// diff_value (json_delta.hpp) on tapes, written as text: objects are walked here, and so are scalars whose
// bytes differ only when their values do; anything else is read back and handed to diff_value, so that the
// text is that of json_diff's delta exactly. Appends nothing and returns false when the values are equal.
// `cache`: for the members of a top-level object that are containers (a scalar is as quickly diffed as looked up).
inline bool tape_diff_value(std::string& out, std::string_view from, std::string_view to, int level,
                            TapeDiffCache* cache) {
    const auto scalar = [](char tag) {
        return tag == 'n' || tag == 't' || tag == 'f' || tag == 's' || tag == 'i' || tag == 'u';
    };
    if (from.front() != 'o' || to.front() != 'o' || level > json_delta_max_depth) {
        if (from == to) return false;
        const char a = from.front();
        const char b = to.front();
        // An int and a uint may be equal values; doubles may equal each other (0 and -0.0) or any number.
        if (scalar(a) && scalar(b) && !((a == 'i' && b == 'u') || (a == 'u' && b == 'i'))) {
            tape_dump_replaced(out, from, to);
            return true;
        }
        const auto delta = diff_value(tape_read(from), tape_read(to), level);
        if (!delta) return false;
        tape_dump_json(out, *delta);
        return true;
    }
    const auto start = out.size();
    bool any = false;
    bool reserved = false;  // a member named _t changed: the object is replaced whole, as diff_object does
    const auto member = [&](std::string_view key) {
        out += any ? ',' : '{';
        any = true;
        reserved = reserved || key == "_t";
        tape_dump_string(out, key);
        out += ':';
    };
    TapeMembers a{from};
    TapeMembers b{to};
    while (!a.done() || !b.done()) {
        const int order = a.done() ? 1 : b.done() ? -1 : a.key().compare(b.key());
        if (order < 0) {
            member(a.key());
            out += '[';
            tape_dump(out, a.value());
            out += ",0,0]";
            a.next();
        } else if (order > 0) {
            member(b.key());
            out += '[';
            tape_dump(out, b.value());
            out += ']';
            b.next();
        } else {
            if (a.value() != b.value()) {
                const auto mark = out.size();
                const bool had = any;
                const bool had_reserved = reserved;
                member(a.key());
                const auto container = [](std::string_view v) { return v.front() == 'o' || v.front() == 'a'; };
                const bool changed = cache && level == 1 && container(a.value()) && container(b.value())
                                         ? tape_diff_member(out, *cache, a.value(), b.value(), level + 1)
                                         : tape_diff_value(out, a.value(), b.value(), level + 1);
                if (!changed) {
                    out.resize(mark);
                    any = had;
                    reserved = had_reserved;
                }
            }
            a.next();
            b.next();
        }
    }
    if (!any) return false;
    if (reserved) {
        out.resize(start);
        tape_dump_replaced(out, from, to);
        return true;
    }
    out += '}';
    return true;
}

/// The text of json_diff(from.value(), to.value()) as dump(-1, ' ', false, replace) writes it, without
/// reading back what did not change; nullopt when the values are equal. With a cache, the members of top-level
/// objects that it saw change alike before are not diffed again.
[[nodiscard]] inline std::optional<std::string> tape_diff(const JsonTape& from, const JsonTape& to,
                                                          TapeDiffCache* cache = nullptr) {
    std::string out;
    if (!tape_diff_value(out, from.bytes(), to.bytes(), 1, cache)) return std::nullopt;
    return out;
}

}  // namespace krmx::detail

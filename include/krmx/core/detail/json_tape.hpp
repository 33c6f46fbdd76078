#pragma once
// krmx::detail::JsonTape: a JSON value written into one contiguous buffer, and json_diff between two of
// them. A projection keeps the view each user holds until the next action: with 800 users, the trees of
// nodes that nlohmann::json builds have gone cold in the cache by then, and walking one to diff it costs a
// cache miss per node (a profile of the projection benchmark put 40-45% of its time in walking, hashing,
// comparing and freeing such trees). A tape is read front to back from a few cache lines, compared with
// memcmp, hashed in one pass and freed in one call.
//
// Equal tapes are equal values. Unequal tapes may still be equal values (1 and 1.0, 0 and -0.0): tape_diff
// says, and gives exactly what json_diff gives for the values they hold.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

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
    [[nodiscard]] std::size_t hash() const noexcept { return std::hash<std::string_view>{}(bytes_); }
    friend bool operator==(const JsonTape& a, const JsonTape& b) noexcept { return a.bytes_ == b.bytes_; }

  private:
    // A length or count as the tape holds it.
    static std::uint32_t u32(std::size_t n) {
        if (n > std::numeric_limits<std::uint32_t>::max()) {
            throw std::length_error("krmx::detail::JsonTape: a string, array or object of 4 GiB or more");
        }
        return static_cast<std::uint32_t>(n);
    }
    void put_u32(std::size_t n) { put(u32(n)); }
    template <class T>
    void put(T v) {
        bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    // Writes a container's header with room for its length, and returns where that length goes.
    std::size_t open(char tag, std::size_t count) {
        bytes_ += tag;
        put_u32(count);
        const auto at = bytes_.size();
        put_u32(0);
        return at;
    }
    void close(std::size_t at) {
        const auto length = u32(bytes_.size() - at - sizeof(std::uint32_t));
        std::memcpy(bytes_.data() + at, &length, sizeof length);
    }

    void write(const nlohmann::json& value) {
        using T = nlohmann::json::value_t;
        switch (value.type()) {
            case T::null:
                bytes_ += 'n';
                return;
            case T::boolean:
                bytes_ += value.get_ref<const bool&>() ? 't' : 'f';
                return;
            case T::number_integer:
                bytes_ += 'i';
                put(value.get_ref<const std::int64_t&>());
                return;
            case T::number_unsigned:
                bytes_ += 'u';
                put(value.get_ref<const std::uint64_t&>());
                return;
            case T::number_float:
                bytes_ += 'd';
                put(value.get_ref<const double&>());
                return;
            case T::string: {
                const auto& s = value.get_ref<const std::string&>();
                bytes_ += 's';
                put_u32(s.size());
                bytes_ += s;
                return;
            }
            case T::binary: {
                const auto& b = value.get_binary();
                bytes_ += 'b';
                put(static_cast<std::uint8_t>(b.has_subtype() ? 1 : 0));
                put(static_cast<std::uint64_t>(b.has_subtype() ? b.subtype() : 0));
                put_u32(b.size());
                bytes_.append(reinterpret_cast<const char*>(b.data()), b.size());
                return;
            }
            case T::array: {
                const auto at = open('a', value.size());
                for (const auto& element : value.get_ref<const nlohmann::json::array_t&>()) write(element);
                close(at);
                return;
            }
            case T::object: {
                const auto at = open('o', value.size());
                for (const auto& [key, member] : value.get_ref<const nlohmann::json::object_t&>()) {
                    put_u32(key.size());
                    bytes_ += key;
                    write(member);
                }
                close(at);
                return;
            }
            case T::discarded:
                bytes_ += 'x';
                return;
        }
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
            return p[1] ? nlohmann::json::binary(std::move(bytes), subtype) : nlohmann::json::binary(std::move(bytes));
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

inline nlohmann::json JsonTape::value() const { return tape_read(bytes_); }

// diff_value (json_delta.hpp) on tapes: objects are walked here, anything else is read back and handed to
// diff_value, so that the deltas are json_diff's exactly.
[[nodiscard]] inline std::optional<nlohmann::json> tape_diff_value(std::string_view from, std::string_view to,
                                                                   int level) {
    if (from.front() != 'o' || to.front() != 'o' || level > json_delta_max_depth) {
        if (from == to) return std::nullopt;
        return diff_value(tape_read(from), tape_read(to), level);
    }
    nlohmann::json delta;  // null until a member differs
    TapeMembers a{from};
    TapeMembers b{to};
    while (!a.done() || !b.done()) {
        const int order = a.done() ? 1 : b.done() ? -1 : a.key().compare(b.key());
        if (order < 0) {
            delta[std::string{a.key()}] = delta_deleted(tape_read(a.value()));
            a.next();
        } else if (order > 0) {
            delta[std::string{b.key()}] = delta_added(tape_read(b.value()));
            b.next();
        } else {
            if (a.value() != b.value()) {
                if (auto nested = tape_diff_value(a.value(), b.value(), level + 1)) {
                    delta[std::string{a.key()}] = std::move(*nested);
                }
            }
            a.next();
            b.next();
        }
    }
    if (delta.is_null()) return std::nullopt;
    if (delta.contains("_t")) return delta_replaced(tape_read(from), tape_read(to));  // as diff_object
    return delta;
}

/// json_diff(from.value(), to.value()), without reading back what did not change.
[[nodiscard]] inline std::optional<nlohmann::json> tape_diff(const JsonTape& from, const JsonTape& to) {
    return tape_diff_value(from.bytes(), to.bytes(), 1);
}

}  // namespace krmx::detail

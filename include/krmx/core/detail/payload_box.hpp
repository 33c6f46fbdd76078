#pragma once
// Type-erased storage for one payload, so that a log can hold events of many payload types in one
// contiguous vector without touching JSON. Small payloads (ints, short structs, std::string) live inline.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/payload.hpp"

namespace krmx::detail {

inline constexpr std::size_t payload_inline_size = 32;
inline constexpr std::size_t payload_inline_align = 8;

// One table of operations per payload type, shared by every box holding that type.
struct PayloadOps {
    bool is_inline;
    bool has_payload;  // false for NoPayload: the wire form has no `payload` member
    bool trivially_relocatable;
    void (*copy)(void* dst, const void* src);
    void (*relocate)(void* dst, void* src) noexcept;  // move-construct dst from src, then destroy src
    void (*destroy)(void* storage) noexcept;          // nullptr when there is nothing to destroy
    void (*to_json)(nlohmann::json& out, const void* payload);
    void (*from_json)(const nlohmann::json& in, void* storage);  // constructs into empty storage
    bool (*equals)(const void* a, const void* b);
    // Constructs straight from raw, already validated JSON text when that gives exactly what
    // nlohmann would; returns false (constructing nothing) when the general path must decide.
    bool (*from_raw)(std::string_view raw, void* storage);
};

// The raw fast path: integers that fit, booleans, and strings without escapes. Anything else (floats
// for integer types, out-of-range numbers, escapes, structs) goes through nlohmann, whose semantics
// stay the reference.
template <class P>
bool payload_from_raw(std::string_view raw, void* storage) {
    if (raw.empty()) return false;
    if constexpr (std::is_same_v<P, bool>) {
        if (raw == "true" || raw == "false") {
            ::new (storage) bool(raw.front() == 't');
            return true;
        }
        return false;
    } else if constexpr (std::is_integral_v<P> && !std::is_same_v<P, char>) {
        P value{};
        const auto [end, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), value);
        if (ec != std::errc{} || end != raw.data() + raw.size()) return false;
        if (std::is_unsigned_v<P> && raw.front() == '-') return false;
        ::new (storage) P(value);
        return true;
    } else if constexpr (std::is_same_v<P, std::string>) {
        if (raw.size() < 2 || raw.front() != '"' || raw.find('\\') != std::string_view::npos) return false;
        ::new (storage) std::string(raw.substr(1, raw.size() - 2));
        return true;
    } else {
        (void)storage;
        return false;
    }
}

template <class P>
constexpr bool payload_is_inline =
    sizeof(P) <= payload_inline_size &&
    alignof(P) <= payload_inline_align&& std::is_nothrow_move_constructible_v<P>;

template <class P>
const P* payload_ptr(const void* storage) noexcept {
    if constexpr (payload_is_inline<P>) {
        return std::launder(static_cast<const P*>(storage));
    } else {
        return *static_cast<P* const*>(storage);
    }
}

// nlohmann converts 1.5 to an int as 1, true to 1 and 1e20 to whatever wraps; for a payload that is data
// loss. Integral payloads take integers that fit (3.0 counts as 3), and refuse everything else by name.
template <class P>
P strict_integer(const nlohmann::json& j) {
    using Limits = std::numeric_limits<P>;
    const auto refuse = [&] {
        return std::out_of_range("expected an integer from " + std::to_string(Limits::min()) + " to " +
                                 std::to_string(Limits::max()) + ", got " + j.dump());
    };
    if (j.is_number_unsigned()) {
        const auto v = j.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(Limits::max())) throw refuse();
        return static_cast<P>(v);
    }
    if (j.is_number_integer()) {
        const auto v = j.get<std::int64_t>();
        if (v < 0 && (std::is_unsigned_v<P> || v < static_cast<std::int64_t>(Limits::min()))) throw refuse();
        if (v > 0 && static_cast<std::uint64_t>(v) > static_cast<std::uint64_t>(Limits::max()))
            throw refuse();
        return static_cast<P>(v);
    }
    if (j.is_number_float()) {
        const auto d = j.get<double>();
        if (!(std::trunc(d) == d) || d < static_cast<double>(Limits::min()) ||
            d >= static_cast<double>(Limits::max()) + 1.0) {
            throw refuse();
        }
        return static_cast<P>(d);
    }
    if (j.is_boolean()) throw refuse();
    return j.get<P>();  // not a number: nlohmann's type error names what it is
}

// --- Strict conversion of composite payloads, with nothing for the user to write -------------------
// nlohmann's own conversions inside a user's from_json (NLOHMANN_DEFINE_TYPE_*, get_to) are lenient at
// every depth: 2.5 becomes 2, true becomes 1, 256 becomes 0 in a uint8_t. Rather than ask users to write
// strict converters, a composite payload is converted, serialized back, and compared with what was sent:
// every value the payload type read must read back exactly as it was sent. Members it does not read are
// not judged (as zod strips unknown keys). The one conversion that is undefined behaviour before it can be
// compared, a float into an integer type it does not fit, is ruled out first by a probe (see below).

inline std::string json_path_key(const std::string& path, const std::string& key) {
    return path + "." + key;
}

inline std::string json_kind_name(const nlohmann::json& j) {
    if (j.is_number_integer() || j.is_number_unsigned()) return "an integer";
    if (j.is_number_float()) return "a number";
    if (j.is_boolean()) return "a boolean";
    if (j.is_string()) return "a string";
    if (j.is_array()) return "an array";
    if (j.is_object()) return "an object";
    return "null";
}

inline bool json_numbers_equal(const nlohmann::json& a, const nlohmann::json& b) {
    if (a.is_number_float() || b.is_number_float()) return a.get<double>() == b.get<double>();
    const bool a_negative = a.is_number_integer() && a.get<std::int64_t>() < 0;
    const bool b_negative = b.is_number_integer() && b.get<std::int64_t>() < 0;
    if (a_negative != b_negative) return false;
    if (a_negative) return a.get<std::int64_t>() == b.get<std::int64_t>();
    return a.get<std::uint64_t>() == b.get<std::uint64_t>();
}

// The first place where `read` (the payload serialized back) says something other than `sent`. `shown`
// has the shape of `sent` and holds the values to name in the message (the probe compares stand-ins).
inline std::optional<std::string> first_lossy_value(const nlohmann::json& sent, const nlohmann::json& read,
                                                    const std::string& path, const nlohmann::json& shown) {
    const auto differ = [&] {
        if (read.is_number() && sent.is_number() && shown == sent) {
            return std::optional<std::string>{path + ": " + shown.dump() + " does not fit (it reads as " +
                                              read.dump() + ")"};
        }
        return std::optional<std::string>{path + ": expected " + json_kind_name(read) + ", got " +
                                          (shown.is_structured() ? json_kind_name(shown) : shown.dump())};
    };
    switch (read.type()) {
        case nlohmann::json::value_t::object: {
            if (!sent.is_object()) return differ();
            for (const auto& [key, value] : read.get_ref<const nlohmann::json::object_t&>()) {
                const auto it = sent.find(key);
                if (it == sent.end()) continue;  // absent: the type filled in a default
                if (auto inner = first_lossy_value(*it, value, json_path_key(path, key), shown.at(key)))
                    return inner;
            }
            return std::nullopt;
        }
        case nlohmann::json::value_t::array: {
            if (!sent.is_array() || sent.size() != read.size()) return differ();
            for (std::size_t i = 0; i < read.size(); ++i) {
                if (auto inner =
                        first_lossy_value(sent[i], read[i], path + "[" + std::to_string(i) + "]", shown[i]))
                    return inner;
            }
            return std::nullopt;
        }
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned:
        case nlohmann::json::value_t::number_float:
            if (!sent.is_number() || !json_numbers_equal(sent, read)) return differ();
            return std::nullopt;
        case nlohmann::json::value_t::boolean:
        case nlohmann::json::value_t::string:
        case nlohmann::json::value_t::null:
            if (sent != read) return differ();
            return std::nullopt;
        default:
            return std::nullopt;  // binary and discarded values never come from the wire
    }
}

// Integral floats that fit 64 bits become integers (3.0 is 3 to every reader); reports whether any float
// is left, and with `probe` replaces each such float by 0.5 (see strict_composite).
inline bool normalize_floats(nlohmann::json& j, bool probe) {
    bool left = false;
    if (j.is_structured()) {
        for (auto& element : j) left = normalize_floats(element, probe) || left;
    } else if (j.is_number_float()) {
        const double d = j.get<double>();
        if (std::trunc(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
            j = static_cast<std::int64_t>(d);
        } else {
            left = true;
            if (probe) j = 0.5;
        }
    }
    return left;
}

inline bool has_float(const nlohmann::json& j) {
    if (j.is_number_float()) return true;
    if (!j.is_structured()) return false;
    for (const auto& element : j) {
        if (has_float(element)) return true;
    }
    return false;
}

template <class P>
P strict_composite(const nlohmann::json& in) {
    if (!has_float(in)) {
        P value = in.template get<P>();
        if (auto lossy = first_lossy_value(in, nlohmann::json(value), "payload", in))
            throw std::invalid_argument(*lossy);
        return value;
    }
    // A float read into an integer type it does not fit is undefined behaviour inside nlohmann. Integral
    // floats become integers first (integer narrowing is defined); each float left is then a fraction or
    // huge. A probe with every such float replaced by 0.5, which every integer type holds (as 0), shows
    // whether any of them lands in an integer: then the payload is refused before the real conversion.
    nlohmann::json normalized = in;
    normalize_floats(normalized, false);
    nlohmann::json probe = normalized;
    normalize_floats(probe, true);
    if (auto lossy = first_lossy_value(probe, nlohmann::json(probe.template get<P>()), "payload", in))
        throw std::invalid_argument(*lossy);
    P value = normalized.template get<P>();
    if (auto lossy = first_lossy_value(in, nlohmann::json(value), "payload", in)) throw std::invalid_argument(*lossy);
    return value;
}

template <class P>
P payload_from_json(const nlohmann::json& in) {
    if constexpr (std::is_integral_v<P> && !std::is_same_v<P, bool>) {
        return strict_integer<P>(in);
    } else if constexpr (std::is_floating_point_v<P>) {
        if (!in.is_number()) throw std::invalid_argument("payload: expected a number, got " + in.dump());
        return in.template get<P>();
    } else if constexpr (std::is_same_v<P, bool> || std::is_same_v<P, std::string> || std::is_enum_v<P>) {
        return in.template get<P>();  // nlohmann is strict about these
    } else {
        return strict_composite<P>(in);
    }
}

template <class P>
bool payload_equals(const void* a, const void* b) {
    if constexpr (std::equality_comparable<P>) {
        return *payload_ptr<P>(a) == *payload_ptr<P>(b);
    } else {
        // Without operator==, two payloads are equal when they serialize alike.
        return nlohmann::json(*payload_ptr<P>(a)) == nlohmann::json(*payload_ptr<P>(b));
    }
}

template <class P>
inline constexpr PayloadOps payload_ops{
    payload_is_inline<P>,
    !std::is_same_v<P, NoPayload>,
    payload_is_inline<P> && std::is_trivially_copyable_v<P>,
    [](void* dst, const void* src) {
        if constexpr (payload_is_inline<P>) {
            ::new (dst) P(*payload_ptr<P>(src));
        } else {
            *static_cast<P**>(dst) = new P(*payload_ptr<P>(src));
        }
    },
    [](void* dst, void* src) noexcept {
        if constexpr (payload_is_inline<P>) {
            P* from = std::launder(static_cast<P*>(src));
            ::new (dst) P(std::move(*from));
            from->~P();
        } else {
            *static_cast<P**>(dst) = *static_cast<P**>(src);
        }
    },
    std::is_trivially_destructible_v<P> && payload_is_inline<P>
        ? nullptr
        : +[](void* storage) noexcept {
              if constexpr (payload_is_inline<P>) {
                  std::launder(static_cast<P*>(storage))->~P();
              } else {
                  delete *static_cast<P**>(storage);
              }
          },
    [](nlohmann::json& out, const void* payload) {
        if constexpr (std::is_same_v<P, NoPayload>) {
            out = nullptr;
        } else {
            out = *payload_ptr<P>(payload);
        }
    },
    [](const nlohmann::json& in, void* storage) {
        if constexpr (std::is_same_v<P, NoPayload>) {
            ::new (storage) NoPayload{};
        } else if constexpr (payload_is_inline<P>) {
            ::new (storage) P(payload_from_json<P>(in));
        } else {
            *static_cast<P**>(storage) = new P(payload_from_json<P>(in));
        }
    },
    &payload_equals<P>,
    &payload_from_raw<P>,
};

// Owns one payload of a type known only through its ops table.
class PayloadBox {
  public:
    PayloadBox() noexcept = default;
    template <class T>
    static PayloadBox make(T&& payload) {
        using P = std::remove_cvref_t<T>;
        PayloadBox box;
        if constexpr (payload_is_inline<P>) {
            ::new (static_cast<void*>(box.storage_)) P(std::forward<T>(payload));
        } else {
            *reinterpret_cast<P**>(box.storage_) = new P(std::forward<T>(payload));
        }
        box.ops_ = &payload_ops<P>;
        return box;
    }
    static PayloadBox from_json(const PayloadOps& ops, const nlohmann::json& in) {
        PayloadBox box;
        ops.from_json(in, box.storage_);  // throws before ops_ is set: nothing to destroy
        box.ops_ = &ops;
        return box;
    }

    /// From raw, validated JSON text: the fast path when it applies, else nlohmann.
    static PayloadBox from_raw(const PayloadOps& ops, std::string_view raw) {
        PayloadBox box;
        if (ops.is_inline && ops.from_raw(raw, box.storage_)) {
            box.ops_ = &ops;
            return box;
        }
        return from_json(ops, nlohmann::json::parse(raw));
    }

    PayloadBox(const PayloadBox& other) : ops_(nullptr) {
        if (other.ops_) {
            other.ops_->copy(storage_, other.storage_);
            ops_ = other.ops_;
        }
    }
    PayloadBox(PayloadBox&& other) noexcept : ops_(other.ops_) {
        if (ops_) {
            relocate_from(other);
            other.ops_ = nullptr;
        }
    }
    PayloadBox& operator=(PayloadBox other) noexcept {
        reset();
        if (other.ops_) {
            ops_ = other.ops_;
            relocate_from(other);
            other.ops_ = nullptr;
        }
        return *this;
    }
    ~PayloadBox() { reset(); }

    void reset() noexcept {
        if (ops_ && ops_->destroy) ops_->destroy(storage_);
        ops_ = nullptr;
    }

    [[nodiscard]] bool empty() const noexcept { return ops_ == nullptr; }
    [[nodiscard]] const PayloadOps* ops() const noexcept { return ops_; }
    /// Address to hand to a handler thunk: the payload object itself.
    [[nodiscard]] const void* get() const noexcept {
        if (!ops_) return nullptr;
        return ops_->is_inline ? static_cast<const void*>(storage_)
                               : *reinterpret_cast<void* const*>(storage_);
    }
    template <class P>
    [[nodiscard]] const P* get_if() const noexcept {
        return ops_ == &payload_ops<P> ? static_cast<const P*>(get()) : nullptr;
    }
    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json out;
        if (ops_) ops_->to_json(out, storage_);
        return out;
    }
    [[nodiscard]] bool equals(const PayloadBox& other) const {
        if (ops_ != other.ops_) {
            // Different C++ types (or an empty box): compare what they say on the wire.
            return !empty() && !other.empty() && to_json() == other.to_json();
        }
        return !ops_ || ops_->equals(storage_, other.storage_);
    }

  private:
    void relocate_from(PayloadBox& other) noexcept {
        if (ops_->trivially_relocatable || !ops_->is_inline) {
            std::memcpy(storage_, other.storage_, payload_inline_size);
        } else {
            ops_->relocate(storage_, other.storage_);
        }
    }

    alignas(payload_inline_align) unsigned char storage_[payload_inline_size];
    const PayloadOps* ops_ = nullptr;
};

}  // namespace krmx::detail

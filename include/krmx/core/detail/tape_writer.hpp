#pragma once
// krmx::detail::TapeWriter: a C++ value written straight onto a JsonTape, without the nlohmann::json tree
// that to_json would build first (that tree's nodes, allocated, walked and freed for every view of every
// user, were 40% of a projection's time in its benchmark). The tape is byte for byte the one that
// JsonTape{nlohmann::json(value)} holds. Written here: types whose to_json is nlohmann's own (bool, the
// standard integer and floating types, std::string, nlohmann::json), types defined with KRMX_DEFINE_VIEW, and
// std::vector, std::map with string keys and std::optional (as krmx/core/json_optional.hpp writes it) of
// those. Anything else goes through its to_json, and its tree is copied onto the tape.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_tape.hpp"
#include "krmx/core/json_optional.hpp"

namespace krmx::detail {

class TapeWriter {
  public:
    void null() { bytes_ += 'n'; }
    void boolean(bool v) { bytes_ += v ? 't' : 'f'; }
    void integer(std::int64_t v) { scalar('i', v); }
    void unsigned_integer(std::uint64_t v) { scalar('u', v); }
    void number(double v) { scalar('d', v); }
    void string(std::string_view s) {
        bytes_ += 's';
        length(s.size());
        bytes_.append(s);
    }
    void key(std::string_view k) {
        length(k.size());
        bytes_.append(k);
    }
    void json(const nlohmann::json& value) { JsonTape::append(bytes_, value); }
    /// Starts an array ('a') or an object ('o'); close() it with the count of its elements or members.
    [[nodiscard]] std::size_t open(char tag) {
        bytes_ += tag;
        const auto at = bytes_.size();
        bytes_.append(8, '\0');
        return at;
    }
    void close(std::size_t at, std::size_t count) {
        const auto n = JsonTape::u32(count);
        const auto extent = JsonTape::u32(bytes_.size() - at - 8);
        std::memcpy(bytes_.data() + at, &n, 4);
        std::memcpy(bytes_.data() + at + 4, &extent, 4);
    }
    void reserve(std::size_t n) { bytes_.reserve(n); }
    [[nodiscard]] JsonTape tape() && { return JsonTape::adopt(std::move(bytes_)); }

  private:
    template <class V>
    void scalar(char tag, V v) {
        bytes_ += tag;
        char raw[sizeof v];
        std::memcpy(raw, &v, sizeof v);
        bytes_.append(raw, sizeof v);
    }
    void length(std::size_t n) {
        const auto v = JsonTape::u32(n);
        char raw[4];
        std::memcpy(raw, &v, 4);
        bytes_.append(raw, 4);
    }
    std::string bytes_;
};

template <class T>
concept HasTapeWriter = requires(TapeWriter& w, const T& value) { krmx_write_tape(w, value); };

template <class T, class... Ts>
inline constexpr bool is_one_of = (std::is_same_v<T, Ts> || ...);

template <class T>
struct TapeVector : std::false_type {};
template <class E>
struct TapeVector<std::vector<E>> : std::bool_constant<!std::is_same_v<E, bool>> {};  // (bits, not bools)

template <class T>
struct TapeMap : std::false_type {};
template <class V>
struct TapeMap<std::map<std::string, V>> : std::true_type {};
template <class V>
struct TapeMap<std::map<std::string, V, std::less<>>> : std::true_type {};

template <class T>
struct TapeOptional : std::false_type {};
#if !defined(KRMX_NO_OPTIONAL_SERIALIZER)
template <class V>
struct TapeOptional<std::optional<V>> : std::true_type {};
#endif

// Whether T is written here: a scalar, a view type, or a container of those. A container of anything else
// goes through to_json whole, since its elements' namespace may hold a to_json for the container itself.
template <class T>
[[nodiscard]] constexpr bool tape_known() {
    if constexpr (is_one_of<T, bool, short, int, long, long long, unsigned short, unsigned, unsigned long,
                            unsigned long long, float, double, std::string, nlohmann::json> ||
                  HasTapeWriter<T>) {
        return true;
    } else if constexpr (TapeVector<T>::value || TapeOptional<T>::value) {
        return tape_known<typename T::value_type>();
    } else if constexpr (TapeMap<T>::value) {
        return tape_known<typename T::mapped_type>();
    } else {
        return false;
    }
}

template <class T>
void tape_write(TapeWriter& w, const T& value) {
    if constexpr (!tape_known<T>()) {
        w.json(nlohmann::json(value));  // its own to_json: an enum, a type of the user's
    } else if constexpr (std::is_same_v<T, bool>) {
        w.boolean(value);
    } else if constexpr (is_one_of<T, short, int, long, long long>) {
        w.integer(value);
    } else if constexpr (is_one_of<T, unsigned short, unsigned, unsigned long, unsigned long long>) {
        w.unsigned_integer(value);
    } else if constexpr (is_one_of<T, float, double>) {
        w.number(static_cast<double>(value));
    } else if constexpr (std::is_same_v<T, std::string>) {
        w.string(value);
    } else if constexpr (std::is_same_v<T, nlohmann::json>) {
        w.json(value);
    } else if constexpr (HasTapeWriter<T>) {
        krmx_write_tape(w, value);
    } else if constexpr (TapeVector<T>::value) {
        const auto at = w.open('a');
        for (const auto& element : value) tape_write(w, element);
        w.close(at, value.size());
    } else if constexpr (TapeMap<T>::value) {
        const auto at = w.open('o');
        for (const auto& [k, v] : value) {
            w.key(k);
            tape_write(w, v);
        }
        w.close(at, value.size());
    } else if constexpr (TapeOptional<T>::value) {
        if (value) {
            tape_write(w, *value);
        } else {
            w.null();
        }
    }
}

// KRMX_DEFINE_VIEW's members, in the order nlohmann's object (a std::map) keeps its keys.

template <std::size_t N>
[[nodiscard]] constexpr bool distinct_member_names(const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; i < N; ++i) {
        for (std::size_t j = i + 1; j < N; ++j) {
            if (names[i] == names[j]) return false;
        }
    }
    return true;
}

template <std::size_t N>
[[nodiscard]] constexpr std::array<std::size_t, N> member_order(const std::array<std::string_view, N>& names) {
    std::array<std::size_t, N> order{};
    for (std::size_t i = 0; i < N; ++i) order[i] = i;
    for (std::size_t i = 1; i < N; ++i) {  // (a handful of members: insertion sort)
        for (std::size_t j = i; j > 0 && names[order[j]] < names[order[j - 1]]; --j) std::swap(order[j], order[j - 1]);
    }
    return order;
}

template <std::size_t N, class... Members>
void write_members(TapeWriter& w, const std::array<std::string_view, N>& names,
                   const std::array<std::size_t, N>& order, const Members&... members) {
    static_assert(sizeof...(Members) == N);
    const auto refs = std::forward_as_tuple(members...);
    const auto at = w.open('o');
    for (const auto index : order) {
        w.key(names[index]);
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((index == I ? tape_write(w, std::get<I>(refs)) : void()), ...);
        }(std::index_sequence_for<Members...>{});
    }
    w.close(at, N);
}

}  // namespace krmx::detail

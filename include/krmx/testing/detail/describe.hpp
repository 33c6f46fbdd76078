#pragma once
// What the test tools print and compare: a value as JSON when it has a to_json (nlohmann's, found by ADL),
// the first place where two JSON values differ, and state equality that looks deep (through the JSON, so
// that a state sharing structure through pointers is compared by what it holds, not by address).

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace krmx::testing {

/// Thrown by a failed expectation of the test tools. what() is the whole report: the events, the states
/// before and after, and the first difference. Any test framework shows it for a test that throws.
struct ExpectationFailed : std::logic_error {
    using std::logic_error::logic_error;
};

namespace detail {

template <class T>
concept has_to_json = requires(const T& t) { nlohmann::json(t); };

template <class T>
concept has_from_json = has_to_json<T> && std::default_initializable<T> &&
                        requires(const nlohmann::json& j, T& t) { j.get_to(t); };

/// At most `limit` bytes of `text`, marked when cut.
inline std::string clip(std::string text, std::size_t limit = 400) {
    if (text.size() > limit) {
        text.resize(limit);
        text += "... (cut)";
    }
    return text;
}

inline std::string dump(const nlohmann::json& j) {
    return clip(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

template <class T>
std::optional<nlohmann::json> to_json_if_any(const T& value) {
    if constexpr (has_to_json<T>) {
        try {
            return nlohmann::json(value);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    } else {
        (void)value;
        return std::nullopt;
    }
}

/// The value as one line of JSON, or a note that it has no JSON form.
template <class T>
std::string describe(const T& value) {
    if (auto j = to_json_if_any(value)) return dump(*j);
    return "(no JSON form: give the type a to_json to see it here)";
}

/// "/path: expected X, got Y" for the first difference (objects by sorted key, arrays by index); empty
/// when equal.
inline std::string first_difference(const nlohmann::json& expected, const nlohmann::json& actual,
                                    const std::string& path = {}) {
    const std::string where = path.empty() ? "/" : path;
    if (expected.type() != actual.type() && !(expected.is_number() && actual.is_number())) {
        return where + ": expected " + dump(expected) + ", got " + dump(actual);
    }
    if (expected.is_object()) {
        for (auto it = expected.begin(); it != expected.end(); ++it) {
            const auto other = actual.find(it.key());
            if (other == actual.end()) return path + "/" + it.key() + ": missing (expected " + dump(*it) + ")";
            if (auto d = first_difference(*it, *other, path + "/" + it.key()); !d.empty()) return d;
        }
        for (auto it = actual.begin(); it != actual.end(); ++it) {
            if (!expected.contains(it.key())) return path + "/" + it.key() + ": unexpected " + dump(*it);
        }
        return {};
    }
    if (expected.is_array()) {
        const std::size_t common = std::min(expected.size(), actual.size());
        for (std::size_t i = 0; i < common; ++i) {
            if (auto d = first_difference(expected[i], actual[i], path + "/" + std::to_string(i)); !d.empty())
                return d;
        }
        if (expected.size() != actual.size()) {
            return where + ": expected " + std::to_string(expected.size()) + " elements, got " +
                   std::to_string(actual.size()) +
                   (actual.size() > common ? " (first extra: " + dump(actual[common]) + ")"
                                           : " (first missing: " + dump(expected[common]) + ")");
        }
        return {};
    }
    if (expected != actual) return where + ": expected " + dump(expected) + ", got " + dump(actual);
    return {};
}

/// A state as it was, to compare with later: its JSON when it has one (deep: a copy could share what
/// changes), else a copy compared with operator==, else nothing (then nobody can tell).
template <class T>
class Snapshot {
  public:
    Snapshot() = default;
    explicit Snapshot(const T& value) {
        if constexpr (has_to_json<T>) json_ = to_json_if_any(value);
        if constexpr (std::equality_comparable<T>) {
            if (!json_) copy_.emplace(value);
        }
    }
    /// Where `now` differs from the snapshot ("" when it does not); nullopt when that cannot be told.
    [[nodiscard]] std::optional<std::string> difference(const T& now) const {
        if constexpr (has_to_json<T>) {
            if (json_) {
                if (const auto j = to_json_if_any(now)) return first_difference(*json_, *j);
            }
        }
        if constexpr (std::equality_comparable<T>) {
            if (copy_) return *copy_ == now ? std::string{} : std::string{"the states differ (operator==)"};
        }
        (void)now;
        return std::nullopt;
    }
    [[nodiscard]] std::string str() const {
        if (json_) return dump(*json_);
        return "(no JSON form: give the type a to_json to see it here)";
    }

  private:
    std::optional<nlohmann::json> json_;
    std::optional<T> copy_;
};

/// Whether two states are the same, and if not, where they differ ("" when equal). Through JSON when the
/// type has one (deep, and the difference can be located), else operator==. Neither: nullopt (unknown).
template <class T>
std::optional<std::string> difference(const T& expected, const T& actual) {
    return Snapshot<T>{expected}.difference(actual);
}

}  // namespace detail
}  // namespace krmx::testing

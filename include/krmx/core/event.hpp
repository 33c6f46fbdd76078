#pragma once
// The JSON form of an event, `{"type": string, "payload"?: any}`, as it travels on the wire and into
// stores; and the readable diagnostics for a payload that does not fit its type.

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/payload.hpp"

namespace krmx {

/// An event as JSON. `payload` empty means no `payload` member, which is not the same as `null`.
struct Event {
    std::string type;
    std::optional<nlohmann::json> payload;

    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json j = nlohmann::json::object();
        j["type"] = type;
        if (payload) j["payload"] = *payload;
        return j;
    }
    friend bool operator==(const Event&, const Event&) = default;
};

inline void to_json(nlohmann::json& j, const Event& event) {
    j = event.to_json();
}

/// Why a JSON value is not an event, or nothing when it is one.
[[nodiscard]] inline std::optional<std::string> malformed_event_reason(const nlohmann::json& event) {
    if (!event.is_object()) return "event must be a JSON object, got " + std::string{event.type_name()};
    const auto type = event.find("type");
    if (type == event.end()) return std::string{"event has no \"type\" member"};
    if (!type->is_string()) return "event \"type\" must be a string, got " + std::string{type->type_name()};
    return std::nullopt;
}

/// Reads an event from JSON; throws std::invalid_argument with a readable reason when it is not one.
[[nodiscard]] inline Event event_from_json(const nlohmann::json& j) {
    if (auto reason = malformed_event_reason(j)) throw std::invalid_argument(*reason);
    Event e{j["type"].get<std::string>(), std::nullopt};
    if (auto p = j.find("payload"); p != j.end()) e.payload = *p;
    return e;
}

namespace detail {

// nlohmann's messages start with "[json.exception.type_error.302] "; the tag means nothing to a player.
inline std::string_view strip_json_exception_tag(std::string_view what) {
    if (!what.empty() && what.front() == '[') {
        if (auto close = what.find("] "); close != std::string_view::npos) what.remove_prefix(close + 2);
    }
    return what;
}

inline std::string json_kind(const nlohmann::json& j) {
    return j.is_number() ? std::string{"number"} : std::string{j.type_name()};
}

// Walks the expected shape (a default payload serialized) beside the actual JSON and names the first
// place where they part: "payload.book.price: expected number, got string". Returns nothing when the
// shapes agree as far as the expected one can tell (arrays' elements and optionals are not described).
inline std::optional<std::string> first_shape_mismatch(const nlohmann::json& expected,
                                                       const nlohmann::json& actual,
                                                       const std::string& path) {
    if (expected.is_null()) return std::nullopt;  // an optional member: anything may stand here
    if (json_kind(expected) != json_kind(actual)) {
        return path + ": expected " + json_kind(expected) + ", got " + json_kind(actual);
    }
    if (expected.is_object()) {
        for (const auto& [key, value] : expected.items()) {
            const auto it = actual.find(key);
            if (it == actual.end()) {
                if (value.is_null()) continue;
                return path + "." + key + ": missing (expected " + json_kind(value) + ")";
            }
            if (auto inner = first_shape_mismatch(value, *it, path + "." + key)) return inner;
        }
    }
    return std::nullopt;
}

/// A readable message for a payload that nlohmann could not convert to P.
template <class P>
std::string describe_payload_error(const nlohmann::json& actual, std::string_view conversion_error) {
    const auto what = strip_json_exception_tag(conversion_error);
    if (what.starts_with("payload")) return std::string{what};  // krmx's own message names the path already
    if constexpr (std::is_default_constructible_v<P> && !std::is_same_v<P, NoPayload>) {
        try {
            const nlohmann::json expected = P{};
            if (auto mismatch = first_shape_mismatch(expected, actual, "payload")) return *mismatch;
        } catch (...) {
            // The shape could not be derived; nlohmann's own message below still says what went wrong.
        }
    }
    return "payload: " + std::string{what};
}

}  // namespace detail
}  // namespace krmx

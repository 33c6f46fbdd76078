#pragma once
// krmx::testing::Dispatched: an event and who dispatched it, in the JSON form every test tool prints.
// `by("alice", counter::increment(3))` or `by("alice", {{"type", "increment"}, {"payload", 3}})`.

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/event_type.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::testing {

struct Dispatched {
    std::string dispatcher;
    nlohmann::json event;  ///< `{"type": ..., "payload"?: ...}`
};

template <class P>
[[nodiscard]] Dispatched by(std::string_view dispatcher, const TypedEvent<P>& event) {
    return {std::string{dispatcher}, event.to_json()};
}
[[nodiscard]] inline Dispatched by(std::string_view dispatcher, nlohmann::json event) {
    return {std::string{dispatcher}, std::move(event)};
}

namespace detail {
/// An event as the test tools print and compare it: `{"type": ..., "payload"?: ...}`, from a typed event,
/// its JSON, or a stored one.
[[nodiscard]] inline nlohmann::json event_json(const nlohmann::json& event) { return event; }
template <class P>
[[nodiscard]] nlohmann::json event_json(const TypedEvent<P>& event) {
    return event.to_json();
}
[[nodiscard]] inline nlohmann::json event_json(std::string_view type, const std::optional<nlohmann::json>& payload) {
    nlohmann::json j{{"type", type}};
    if (payload) j["payload"] = *payload;
    return j;
}
[[nodiscard]] inline nlohmann::json event_json(const NewEvent& event) { return event_json(event.type, event.payload); }
[[nodiscard]] inline nlohmann::json event_json(const RecordedEvent& event) {
    return event_json(event.type, event.payload);
}
}  // namespace detail

/// "alice {"type":"increment","payload":3}"
[[nodiscard]] inline std::string to_string(const Dispatched& d) {
    return d.dispatcher + " " + d.event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace krmx::testing

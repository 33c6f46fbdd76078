#pragma once
// krmx::testing::Dispatched: an event and who dispatched it, in the JSON form every test tool prints.
// `by("alice", counter::increment(3))` or `by("alice", {{"type", "increment"}, {"payload", 3}})`.

#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/event_type.hpp"

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

/// "alice {"type":"increment","payload":3}"
[[nodiscard]] inline std::string to_string(const Dispatched& d) {
    return d.dispatcher + " " + d.event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace krmx::testing

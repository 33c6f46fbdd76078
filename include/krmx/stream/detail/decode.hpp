#pragma once
// Turning an event (JSON or typed) into a handler index and a typed payload, with the refusals a
// stream reports when that is impossible. Shared by every stream flavour.

#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx::detail {

struct DecodedEvent {
    std::uint32_t index = 0;
    PayloadBox payload;
};

inline DispatchResult unknown_type(std::string_view type) {
    return {Outcome::unknown_type, Reason{"unknown event type '" + std::string{type} + "'"}};
}

// Fills `out` and returns an accepted result, or returns why the event cannot be dispatched.
template <class State>
DispatchResult decode_event(const ModelData<State>& model, const nlohmann::json& event, DecodedEvent& out) {
    if (auto reason = malformed_event_reason(event)) return {Outcome::malformed, Reason{std::move(*reason)}};
    const auto& type = event.find("type")->template get_ref<const std::string&>();
    const auto index = model.find(nullptr, type);
    if (!index) return unknown_type(type);
    const auto& handler = *model.handlers[*index];
    const auto payload = event.find("payload");
    if (!handler.ops->has_payload) {
        if (payload != event.end()) {
            return {Outcome::invalid_payload, Reason{"event type '" + type + "' takes no payload, got " +
                                                     json_kind(*payload)}};
        }
        out.payload = PayloadBox::make(NoPayload{});
    } else if (payload == event.end()) {
        return {Outcome::invalid_payload,
                Reason{"payload: missing (event type '" + type + "' needs a payload)"}};
    } else {
        try {
            out.payload = PayloadBox::from_json(*handler.ops, *payload);
        } catch (const std::exception& e) {
            return {Outcome::invalid_payload, Reason{handler.describe_error(*payload, e.what())}};
        }
    }
    out.index = *index;
    return DispatchResult::accepted_at(0);
}

}  // namespace krmx::detail

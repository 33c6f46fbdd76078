#pragma once
// Turning an event (JSON or typed) into a handler index and a typed payload, with the refusals a
// stream reports when that is impossible. Shared by every stream flavour.

#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"
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

// Converts the payload (nullptr when the event has none) for the handler at `index`.
template <class State>
DispatchResult decode_payload(const ModelData<State>& model, std::uint32_t index, std::string_view type,
                              const nlohmann::json* payload, DecodedEvent& out) {
    const auto& handler = *model.handlers[index];
    if (!handler.ops->has_payload) {
        if (payload) {
            return {Outcome::invalid_payload, Reason{"event type '" + std::string{type} +
                                                     "' takes no payload, got " + json_kind(*payload)}};
        }
        out.payload = PayloadBox::make(NoPayload{});
    } else if (!payload) {
        return {Outcome::invalid_payload,
                Reason{"payload: missing (event type '" + std::string{type} + "' needs a payload)"}};
    } else {
        try {
            out.payload = PayloadBox::from_json(*handler.ops, *payload);
        } catch (const std::exception& e) {
            return {Outcome::invalid_payload, Reason{handler.describe_error(*payload, e.what())}};
        }
    }
    out.index = index;
    return DispatchResult::accepted_at(0);
}

// Fills `out` and returns an accepted result, or returns why the event cannot be dispatched.
// An event given as its type name and payload (nullptr: none): a stored record, or a wire event whose
// envelope has been read.
template <class State>
DispatchResult decode_named(const ModelData<State>& model, std::string_view name,
                            const nlohmann::json* payload, DecodedEvent& out) {
    const auto index = model.find_name(name);
    if (!index) return unknown_type(name);
    return decode_payload(model, *index, name, payload, out);
}

template <class State>
DispatchResult decode_event(const ModelData<State>& model, const nlohmann::json& event, DecodedEvent& out) {
    // One pass over the (two or three) members instead of a lookup per member, over the map itself:
    // items() builds a proxy with a string per member, which costs more than the rest of the decode.
    const nlohmann::json* type = nullptr;
    const nlohmann::json* payload = nullptr;
    if (event.is_object()) {
        for (const auto& [key, value] : event.get_ref<const nlohmann::json::object_t&>()) {
            const std::string_view k = key;  // compared without strlen
            if (k == std::string_view{"type"}) {
                type = &value;
            } else if (k == std::string_view{"payload"}) {
                payload = &value;
            }
        }
    }
    if (!type || !type->is_string()) return {Outcome::malformed, Reason{*malformed_event_reason(event)}};
    return decode_named(model, type->template get_ref<const std::string&>(), payload, out);
}

// The same from an event already scanned: its raw text and its members (a krmx::Message hands both on),
// so the envelope is never read twice; only the payload is converted, by the fast raw path or nlohmann.
template <class State>
DispatchResult decode_members(const ModelData<State>& model, std::string_view text,
                              std::span<const JsonMember> members, DecodedEvent& out) {
    std::size_t first = 0;
    while (first < text.size() && (text[first] == ' ' || text[first] == '\t' || text[first] == '\r' || text[first] == '\n'))
        ++first;
    if (first == text.size() || text[first] != '{') {
        return {Outcome::malformed,
                Reason{"event must be a JSON object, got " + std::string{json_raw_kind(text.substr(first))}}};
    }
    const JsonMember* type = find_member(members, "type");
    const JsonMember* payload_member = find_member(members, "payload");
    if (!type) return {Outcome::malformed, Reason{"event has no \"type\" member"}};
    if (type->value.front() != '"') {  // scanned: a value is never empty
        return {Outcome::malformed,
                Reason{"event \"type\" must be a string, got " + std::string{json_raw_kind(type->value)}}};
    }
    std::string decoded_name;
    std::string_view name = type->value.substr(1, type->value.size() - 2);
    if (name.find('\\') != std::string_view::npos) name = decoded_name = *json_string_value(type->value);
    const auto index = model.find_name(name);
    if (!index) return unknown_type(name);
    if (!payload_member) return decode_payload(model, *index, name, nullptr, out);
    const auto& handler = *model.handlers[*index];
    // The scanner's grammar is narrower than nlohmann's, so what it accepted nlohmann reads; parsing
    // without exceptions all the same keeps a disagreement a refusal, never an escaping exception.
    const auto parse = [&] { return nlohmann::json::parse(payload_member->value, nullptr, false); };
    if (!handler.ops->has_payload) {
        const auto payload = parse();
        if (payload.is_discarded()) return {Outcome::malformed, Reason{"event payload is not readable JSON"}};
        return decode_payload(model, *index, name, &payload, out);
    }
    try {
        out.payload = PayloadBox::from_raw(*handler.ops, payload_member->value);
    } catch (const std::exception& e) {
        const auto payload = parse();
        if (payload.is_discarded()) return {Outcome::malformed, Reason{"event payload is not readable JSON"}};
        return {Outcome::invalid_payload, Reason{handler.describe_error(payload, e.what())}};
    }
    out.index = *index;
    return DispatchResult::accepted_at(0);
}

// The same from JSON text, scanned here (server code's own events, stored texts, tests).
// `scratch` is reused between calls to save allocations.
template <class State>
DispatchResult decode_event_text(const ModelData<State>& model, std::string_view text,
                                 std::vector<JsonMember>& scratch, DecodedEvent& out) {
    scratch.clear();
    if (auto error = scan_object(text, scratch); !error.empty()) {
        if (!scan_value(text).empty())
            return {Outcome::malformed, Reason{"event is not valid JSON: " + error}};
        return {Outcome::malformed,
                Reason{"event must be a JSON object, got " +
                       std::string{json_raw_kind(text.substr(text.find_first_not_of(" \t\r\n")))}}};
    }
    return decode_members(model, text, scratch, out);
}

}  // namespace krmx::detail

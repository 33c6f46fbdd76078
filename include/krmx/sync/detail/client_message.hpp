#pragma once
// What a client end of a domain (StreamClient, ProjectionClient) does first with every server message:
// read it once under the one grammar, and keep it only when its type is of the client's protocol and its
// payload names the client's domain.

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"

namespace krmx::detail {

struct ClientMessage {
    enum class Kind { unusable, elsewhere, ours };
    Kind kind = Kind::unusable;
    nlohmann::json message;  // ours: the whole message, whose `type` is a string and `payload` an object

    [[nodiscard]] std::string_view type() const { return message["type"].get_ref<const std::string&>(); }
    [[nodiscard]] const nlohmann::json& payload() const { return message["payload"]; }
};

/// `unusable` (the caller counts it): longer than `max_bytes`, outside the grammar, no object with a string
/// `type`, or of the protocol without a payload naming a domain. `elsewhere`: another protocol's (a `type`
/// not under `prefix`) or another domain's.
[[nodiscard]] inline ClientMessage read_client_message(std::string_view text, std::size_t max_bytes,
                                                      std::string_view prefix, std::string_view domain) {
    ClientMessage out;
    if (text.size() > max_bytes || !scan_value(text, json_max_message_depth).empty()) return out;
    out.message = nlohmann::json::parse(text, nullptr, false);
    if (out.message.is_discarded() || !out.message.is_object()) return out;
    const auto type = out.message.find("type");
    if (type == out.message.end() || !type->is_string()) return out;
    if (!std::string_view{type->get_ref<const std::string&>()}.starts_with(prefix)) {
        out.kind = ClientMessage::Kind::elsewhere;
        return out;
    }
    const auto payload = out.message.find("payload");
    if (payload == out.message.end() || !payload->is_object()) return out;
    const auto named = payload->find("domain");
    if (named == payload->end() || !named->is_string()) return out;
    out.kind = named->get_ref<const std::string&>() == domain ? ClientMessage::Kind::ours : ClientMessage::Kind::elsewhere;
    return out;
}

}  // namespace krmx::detail

#pragma once
// The projection protocol's messages (docs/protocol.md, section 3), built as text: those of Krmx State's
// Projection model (`@krmx/state`), which its ProjectionClient reads, plus `projection/dismissed`.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/detail/json_write.hpp"

namespace krmx {

/// The `type` of each projection message.
namespace projection_message {
/// Server to client: the user's whole view (on link, on admission, and when a delta would not fit).
inline constexpr std::string_view set = "projection/set";
/// Server to client: a jsondiffpatch delta of the user's view, with the sender's optimisticId.
inline constexpr std::string_view delta = "projection/delta";
/// Server to client: the action with this optimisticId was refused (with a `reason`).
inline constexpr std::string_view invalidate = "projection/invalidate";
/// Client to server: an action, with an optimisticId when the client applied it optimistically.
inline constexpr std::string_view action = "projection/action";
/// Server to client: the user left the domain's audience and sees nothing of it any more.
inline constexpr std::string_view dismissed = "projection/dismissed";
inline constexpr std::string_view prefix = "projection/";
}  // namespace projection_message

/// The longest optimisticId a server answers to, in bytes (@krmx/state makes them 41 bytes long); an action
/// with a longer one, or one that is no string, is refused unanswered.
inline constexpr std::size_t max_optimistic_id_bytes = 128;

/// The delta that changes nothing: an array delta without changes, which jsondiffpatch's `patch` applies to
/// any value (`{}`, the obvious one, makes it throw). What a sender whose view did not change receives with
/// its optimisticId, so that every `projection/delta` carries a delta, as @krmx/state's message check wants.
inline constexpr std::string_view no_change_delta = R"({"_t":"a"})";

namespace detail {

/// The optimisticId in a raw JSON value: a string of at most max_optimistic_id_bytes once decoded.
[[nodiscard]] inline std::optional<std::string> optimistic_id(std::string_view raw) {
    if (raw.size() > 6 * max_optimistic_id_bytes + 2) return std::nullopt;
    auto id = json_string_value(raw);
    if (!id || id->size() > max_optimistic_id_bytes) return std::nullopt;
    return id;
}

inline void projection_header(std::string& out, std::string_view type, std::string_view domain) {
    out += R"({"type":")";
    out += type;
    out += R"(","payload":{"domain":)";
    append_json_string(out, domain);
}

/// `{"type":"projection/set","payload":{"domain":..,"projection":<view>}}`
[[nodiscard]] inline std::string projection_set_message(std::string_view domain, std::string_view view_text) {
    std::string out;
    out.reserve(64 + domain.size() + view_text.size());
    projection_header(out, projection_message::set, domain);
    out += R"(,"projection":)";
    out += view_text;
    out += "}}";
    return out;
}

/// `{"type":"projection/delta","payload":{"domain":..,"delta":<delta>[,"optimisticId":..]}}`
[[nodiscard]] inline std::string projection_delta_message(std::string_view domain, std::string_view delta_text,
                                                          std::optional<std::string_view> optimistic) {
    std::string out;
    out.reserve(96 + domain.size() + delta_text.size());
    projection_header(out, projection_message::delta, domain);
    out += R"(,"delta":)";
    out += delta_text;
    if (optimistic) {
        out += R"(,"optimisticId":)";
        append_json_string(out, *optimistic);
    }
    out += "}}";
    return out;
}

/// `{"type":"projection/invalidate","payload":{"domain":..,"optimisticId":..,"reason":..}}`
[[nodiscard]] inline std::string projection_invalidate_message(std::string_view domain, std::string_view optimistic,
                                                               std::string_view reason) {
    std::string out;
    projection_header(out, projection_message::invalidate, domain);
    out += R"(,"optimisticId":)";
    append_json_string(out, optimistic);
    out += R"(,"reason":)";
    append_json_string(out, reason);
    out += "}}";
    return out;
}

/// `{"type":"projection/dismissed","payload":{"domain":..}}`
[[nodiscard]] inline std::string projection_dismissed_message(std::string_view domain) {
    std::string out;
    projection_header(out, projection_message::dismissed, domain);
    out += "}}";
    return out;
}

/// `{"type":"projection/action","payload":{"domain":..,"action":<action>[,"optimisticId":..]}}` (client)
[[nodiscard]] inline std::string projection_action_message(std::string_view domain, std::string_view action_text,
                                                           std::optional<std::string_view> optimistic) {
    std::string out;
    projection_header(out, projection_message::action, domain);
    out += R"(,"action":)";
    out += action_text;
    if (optimistic) {
        out += R"(,"optimisticId":)";
        append_json_string(out, *optimistic);
    }
    out += "}}";
    return out;
}

}  // namespace detail
}  // namespace krmx

#pragma once
// The stream protocol's messages (docs/protocol.md, section 2), built as text. Events are spliced in as the raw
// text they arrived as, so key order and number spelling survive the trip through the server: JavaScript
// clients match their optimistic events on the serialized text.

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"

namespace krmx {

/// The `type` of each stream message.
namespace stream_message {
inline constexpr std::string_view append = "stream/append";
inline constexpr std::string_view history = "stream/history";
inline constexpr std::string_view invalidate = "stream/invalidate";
inline constexpr std::string_view resync = "stream/resync";
/// To a user that left a domain's audience (StreamDomain::dismiss): it hears no more of the domain.
inline constexpr std::string_view dismissed = "stream/dismissed";
/// The state at a position, in parts, instead of the events before it (to clients that read it).
inline constexpr std::string_view snapshot = "stream/snapshot";
inline constexpr std::string_view prefix = "stream/";
}  // namespace stream_message

namespace detail {

inline void append_number(std::string& out, std::uint64_t n) {
    out += std::to_string(n);
}

/// `{"type":"stream/dismissed","payload":{"domain":..}}`: the user left the domain's audience.
[[nodiscard]] inline std::string dismissed_message(std::string_view domain) {
    std::string out{R"({"type":"stream/dismissed","payload":{"domain":)"};
    append_json_string(out, domain);
    out += "}}";
    return out;
}

/// `{"type":"stream/append","payload":{"domain":..,"dispatcher":..,"event":<raw>[,"position":n][,"id":m]}}`:
/// What the server broadcasts for an accepted event (with its position); clients send it without.
[[nodiscard]] inline std::string append_message(std::string_view domain, std::string_view dispatcher,
                                                std::string_view raw_event,
                                                std::optional<std::size_t> position,
                                                std::optional<std::uint64_t> id) {
    std::string out;
    out.reserve(96 + domain.size() + dispatcher.size() + raw_event.size());
    out += R"({"type":"stream/append","payload":{"domain":)";
    append_json_string(out, domain);
    out += R"(,"dispatcher":)";
    append_json_string(out, dispatcher);
    out += R"(,"event":)";
    out += raw_event;
    if (position) {
        out += R"(,"position":)";
        append_number(out, *position);
    }
    if (id) {
        out += R"(,"id":)";
        append_number(out, *id);
    }
    out += "}}";
    return out;
}

/// `{"type":"stream/invalidate","payload":{"domain":..[,"id":n][,"event":<raw>],"reason":..}}`; the id and
/// the event are left out when the client gave none (or none that could be read).
[[nodiscard]] inline std::string invalidate_message(std::string_view domain, std::optional<std::uint64_t> id,
                                                    std::string_view raw_event, std::string_view reason) {
    std::string out;
    out.reserve(96 + domain.size() + raw_event.size() + reason.size());
    out += R"({"type":"stream/invalidate","payload":{"domain":)";
    append_json_string(out, domain);
    if (id) {
        out += R"(,"id":)";
        append_number(out, *id);
    }
    if (!raw_event.empty()) {
        out += R"(,"event":)";
        out += raw_event;
    }
    out += R"(,"reason":)";
    append_json_string(out, reason);
    out += "}}";
    return out;
}

/// `{"type":"stream/history","payload":{"domain":..,"position":first,"events":[{"dispatcher":..,"event":<raw>},..]}}`
/// A page that more pages follow ends in `,"more":true`. `at(i)` returns the pair (dispatcher, raw event)
/// of the i-th listed event.
template <class At>
[[nodiscard]] std::string history_message(std::string_view domain, std::size_t first, std::size_t count,
                                          At&& at, bool more = false) {
    std::string out;
    out += R"({"type":"stream/history","payload":{"domain":)";
    append_json_string(out, domain);
    out += R"(,"position":)";
    append_number(out, first);
    out += R"(,"events":[)";
    for (std::size_t i = 0; i < count; ++i) {
        const auto [dispatcher, raw_event] = at(i);
        if (i > 0) out += ',';
        out += R"({"dispatcher":)";
        append_json_string(out, dispatcher);
        out += R"(,"event":)";
        out += raw_event;
        out += '}';
    }
    out += more ? R"(],"more":true}})" : "]}}";
    return out;
}

/// An upper bound of the bytes an event adds to a message: what a history entry or an append broadcast
/// wraps around its text (escaping can make a name up to six times longer).
[[nodiscard]] inline std::size_t event_message_bytes(std::string_view domain, std::string_view dispatcher,
                                                     std::size_t event_bytes) noexcept {
    return 160 + 6 * (domain.size() + dispatcher.size()) + event_bytes;
}

/// The history from `first` to `end` as `stream/history` pages of at most `max_bytes` each (an event too
/// large for any page still goes out, alone), handed to `emit(std::string)` in order; at least one page,
/// so that an empty history is said too.
/// `more_after`: the last page says `more` too (pages read from a store, page by page).
template <class At, class Emit>
void history_pages(std::string_view domain, std::size_t first, std::size_t end, std::size_t max_bytes,
                   At&& at, Emit&& emit, bool more_after = false) {
    std::size_t start = first;
    while (true) {
        std::size_t bytes = event_message_bytes(domain, {}, 0);
        std::size_t stop = start;
        while (stop < end) {
            const auto [dispatcher, raw_event] = at(stop);
            const std::size_t entry = 40 + 6 * dispatcher.size() + raw_event.size();
            if (stop > start && bytes + entry > max_bytes) break;
            bytes += entry;
            ++stop;
        }
        const bool more = stop < end;
        emit(history_message(domain, start, stop - start, [&](std::size_t i) { return at(start + i); },
                             more || more_after));
        if (!more) return;
        start = stop;
    }
}

/// A state's JSON text as `stream/snapshot` parts of at most about `max_bytes` each, handed to
/// `emit(std::string)` in order: `{"type":"stream/snapshot","payload":{"domain":..,"position":p,
/// "revision":r,"part":i,"parts":n,"text":<a slice of the text, as a JSON string>}}`. The slices, joined,
/// are the text; a slice never splits a UTF-8 sequence. At least one part (an empty text has one).
template <class Emit>
void snapshot_parts(std::string_view domain, std::size_t position, std::uint32_t revision, std::string_view text,
                    std::size_t max_bytes, Emit&& emit) {
    // Escaping can make a byte six long: each slice's budget assumes the worst, so every part fits.
    const std::size_t envelope = 160 + 6 * domain.size();
    const std::size_t slice = max_bytes > envelope + 6 * 64 ? (max_bytes - envelope) / 6 : 64;
    std::vector<std::string_view> slices;
    for (std::size_t at = 0; at < text.size() || slices.empty();) {
        std::size_t end = std::min(text.size(), at + slice);
        // Back to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
        while (end < text.size() && end > at && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
        if (end == at && at < text.size()) end = std::min(text.size(), at + slice);  // not UTF-8: cut anyway
        slices.push_back(text.substr(at, end - at));
        at = end;
        if (at >= text.size()) break;
    }
    for (std::size_t i = 0; i < slices.size(); ++i) {
        std::string out = R"({"type":"stream/snapshot","payload":{"domain":)";
        append_json_string(out, domain);
        out += R"(,"position":)";
        append_number(out, position);
        out += R"(,"revision":)";
        append_number(out, revision);
        out += R"(,"part":)";
        append_number(out, i);
        out += R"(,"parts":)";
        append_number(out, slices.size());
        out += R"(,"text":)";
        append_json_string(out, slices[i]);
        out += "}}";
        emit(std::move(out));
    }
}

/// `{"type":"stream/resync","payload":{"domain":..,"position":n}}`: a client asks for the history from n.
/// With `no_snapshot` it adds `"snapshot":false`: send the events, not a `stream/snapshot` (from a client
/// that could not use the snapshot it was sent).
[[nodiscard]] inline std::string resync_message(std::string_view domain, std::size_t position,
                                                bool no_snapshot = false) {
    std::string out = R"({"type":"stream/resync","payload":{"domain":)";
    append_json_string(out, domain);
    out += R"(,"position":)";
    append_number(out, position);
    if (no_snapshot) out += R"(,"snapshot":false)";
    out += "}}";
    return out;
}

/// What a client sends: the same message without position, with the client's id.
[[nodiscard]] inline std::string client_append_message(std::string_view domain, std::string_view dispatcher,
                                                       std::string_view event_text, std::uint64_t id) {
    return append_message(domain, dispatcher, event_text, std::nullopt, id);
}

/// An event as wire text: `{"type":..,"payload":..}` in that order, as the protocol and the JavaScript
/// clients write it (nlohmann would sort the keys). Never throws on invalid UTF-8: it is replaced.
[[nodiscard]] inline std::string event_text(const nlohmann::json& event) {
    constexpr auto replace = nlohmann::json::error_handler_t::replace;
    const auto type = event.is_object() ? event.find("type") : event.end();
    if (!event.is_object() || event.size() > 2 || type == event.end())
        return event.dump(-1, ' ', false, replace);
    std::string out = R"({"type":)" + type->dump(-1, ' ', false, replace);
    if (const auto payload = event.find("payload"); payload != event.end()) {
        out += R"(,"payload":)" + payload->dump(-1, ' ', false, replace);
    } else if (event.size() > 1) {
        return event.dump(-1, ' ', false, replace);
    }
    return out + "}";
}

/// A raw JSON value that is a non-negative integer fitting 64 bits, written without fraction or exponent.
[[nodiscard]] inline std::optional<std::uint64_t> raw_unsigned(std::string_view raw) noexcept {
    std::uint64_t value = 0;
    if (raw.empty() || raw.front() < '0' || raw.front() > '9') return std::nullopt;
    const auto [end, error] = std::from_chars(raw.data(), raw.data() + raw.size(), value);
    if (error != std::errc{} || end != raw.data() + raw.size()) return std::nullopt;
    return value;
}

}  // namespace detail
}  // namespace krmx

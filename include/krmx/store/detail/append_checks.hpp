#pragma once
// Input checks shared by every store: they run before anything is written, so bad input never reaches
// the log and every store reports it the same way.

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// Throws InvalidAppend unless the append is well formed (see InvalidAppend).
inline void check_append(std::string_view stream, std::span<const NewEvent> events) {
    if (stream.empty()) throw InvalidAppend("the stream name is empty");
    if (events.empty()) throw InvalidAppend("an append to '" + std::string{stream} + "' has no events");
    std::unordered_set<std::string_view> ids;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const NewEvent& event = events[i];
        const std::string where =
            "event " + std::to_string(i) + " of an append to '" + std::string{stream} + "'";
        if (event.type.empty()) throw InvalidAppend(where + " has an empty type");
        if (!event.metadata.is_object() && !event.metadata.is_null()) {
            throw InvalidAppend(where + " has metadata that is not a JSON object");
        }
        if (events.size() > 1 && !event.id.empty() && !ids.insert(event.id).second) {
            throw InvalidAppend(where + " repeats the event id '" + event.id + "'");
        }
    }
}

/// `value` as JSON text; a value that cannot be (invalid UTF-8) is InvalidAppend naming it by `name()`, which
/// is called only then: appends serialize every event.
template <class Name>
std::string serialize_json_named(const nlohmann::json& value, Name&& name) {
    try {
        return value.dump();
    } catch (const nlohmann::json::exception& e) {
        throw InvalidAppend("the " + name() + " cannot be stored as JSON: " + e.what());
    }
}

/// The JSON text of `value`; InvalidAppend if it cannot be written (e.g. a string that is not UTF-8).
inline std::string serialize_json(const nlohmann::json& value, std::string_view what) {
    return serialize_json_named(value, [what] { return std::string{what}; });
}

/// The `part` ("payload", "metadata") of an event of `type` as JSON text; the error names both.
inline std::string serialize_json(const nlohmann::json& value, std::string_view part, std::string_view type) {
    return serialize_json_named(
        value, [part, type] { return std::string{part} + " of a '" + std::string{type} + "' event"; });
}

/// `null` metadata is stored as the empty object, so readers always get an object.
inline nlohmann::json normalized_metadata(const nlohmann::json& metadata) {
    return metadata.is_null() ? nlohmann::json::object() : metadata;
}

/// A default timestamp means "now".
inline std::chrono::system_clock::time_point stamped(std::chrono::system_clock::time_point timestamp) {
    return timestamp == std::chrono::system_clock::time_point{} ? std::chrono::system_clock::now()
                                                                : timestamp;
}

/// Whether a stored event is the same event as `event` for an idempotent repeat. The timestamp is left
/// out: a retry that lets the store stamp it again is still the same event.
inline bool same_content(const RecordedEvent& stored, const NewEvent& event) {
    return stored.type == event.type && stored.payload == event.payload &&
           stored.dispatcher == event.dispatcher && stored.metadata == normalized_metadata(event.metadata);
}

/// Whether the stored events at `first` ... (same stream, consecutive revisions) satisfy `expected` as
/// the original append did: a repeat must land where the original landed.
inline bool repeat_fits(ExpectedRevision expected, Revision first_revision) {
    switch (expected.kind()) {
        case ExpectedRevision::Kind::any:
        case ExpectedRevision::Kind::stream_exists:
            return true;
        case ExpectedRevision::Kind::no_stream:
            return first_revision == 0;
        case ExpectedRevision::Kind::exact:
            return first_revision == expected.revision() + 1;
    }
    return false;
}

}  // namespace krmx::detail

#pragma once
// Input checks shared by every store: they run before anything is written, so bad input never reaches
// the log and every store reports it the same way.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/detail/utf8.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/names.hpp"

namespace krmx::detail {

/// What keeps `value` from being stored as JSON that reads back the same, or nothing: objects and arrays
/// nest at most json_max_event_depth levels (a deeper value overflows the stack of any reader or writer
/// that recurses once per level, nlohmann's own among them), numbers are finite (JSON has no NaN or
/// infinity: nlohmann would write null) and text is valid UTF-8. The value is walked with a stack of its
/// own, so that no depth overflows the thread's stack.
[[nodiscard]] inline std::optional<std::string> json_value_problem(const nlohmann::json& value) {
    const auto not_utf8 = [] {
        return std::string{"holds text that is not valid UTF-8, which JSON cannot hold"};
    };
    const auto scalar_problem = [&](const nlohmann::json& scalar) -> std::optional<std::string> {
        if (scalar.is_number_float() && !std::isfinite(scalar.get_ref<const double&>()))
            return "holds a number that is not finite (NaN or infinity), which JSON cannot hold";
        if (scalar.is_string() && !valid_utf8(scalar.get_ref<const std::string&>())) return not_utf8();
        return std::nullopt;
    };
    if (!value.is_structured()) return scalar_problem(value);
    struct Level {
        const nlohmann::json* container;
        int depth;
    };
    // Containers still to visit: none for a flat value (most payloads and metadata), so nothing is allocated.
    std::vector<Level> pending;
    for (Level level{&value, 1};;) {
        if (level.depth > json_max_event_depth)
            return "nests deeper than " + std::to_string(json_max_event_depth) + " levels";
        const auto visit = [&](const nlohmann::json& item) -> std::optional<std::string> {
            if (!item.is_structured()) return scalar_problem(item);
            pending.push_back({&item, level.depth + 1});
            return std::nullopt;
        };
        if (level.container->is_object()) {
            for (const auto& [key, item] : level.container->get_ref<const nlohmann::json::object_t&>()) {
                if (!valid_utf8(key)) return not_utf8();
                if (auto problem = visit(item)) return problem;
            }
        } else {
            for (const auto& item : level.container->get_ref<const nlohmann::json::array_t&>()) {
                if (auto problem = visit(item)) return problem;
            }
        }
        if (pending.empty()) return std::nullopt;
        level = pending.back();
        pending.pop_back();
    }
}

/// Throws InvalidAppend unless the append is well formed (see InvalidAppend): every name keeps the name
/// rule (names.hpp), payloads and metadata are JSON that reads back the same (json_value_problem). Runs
/// before a store does any I/O, so a refused append leaves every store unchanged, and every store refuses
/// the same appends.
inline void check_append(std::string_view stream, std::span<const NewEvent> events) {
    if (auto problem = name_problem("stream name", stream)) throw InvalidAppend(*problem);
    if (events.empty()) throw InvalidAppend("an append to " + detail::quoted(stream) + " has no events");
    std::unordered_set<std::string_view> ids;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const NewEvent& event = events[i];
        // Built only for an error: most appends have none.
        const auto where = [&] {
            return "event " + std::to_string(i) + " of an append to " + detail::quoted(stream);
        };
        auto problem = name_problem("event type", event.type);
        if (!problem) problem = name_problem("event id", event.id, true);
        if (!problem) problem = name_problem("dispatcher", event.dispatcher, true);
        if (problem) throw InvalidAppend(where() + ": " + *problem);
        if (!event.metadata.is_object() && !event.metadata.is_null()) {
            throw InvalidAppend(where() + " has metadata that is not a JSON object");
        }
        const auto check_json = [&](const nlohmann::json& value, const char* part) {
            if (auto json_problem = json_value_problem(value)) {
                throw InvalidAppend(where() + ": the " + part + " of a " + detail::quoted(event.type) +
                                    " event " + *json_problem);
            }
        };
        if (event.payload) check_json(*event.payload, "payload");
        check_json(event.metadata, "metadata");
        if (events.size() > 1 && !event.id.empty() && !ids.insert(event.id).second) {
            throw InvalidAppend(where() + " repeats the event id " + detail::quoted(event.id));
        }
    }
}

/// Whether `name` keeps the name rule. A read or a filter given a name that does not finds nothing on every
/// store, before any I/O: no event can have such a name.
[[nodiscard]] inline bool storable_name(std::string_view name) {
    return !name_problem("name", name).has_value();
}

/// Whether `filter` names only streams, or only types, that no event can have (see storable_name): then it
/// matches nothing. Names in it that no event can have are passed over; an empty list still means "any".
[[nodiscard]] inline bool matches_nothing(const EventFilter& filter) {
    const auto none_storable = [](const std::vector<std::string>& names) {
        return !names.empty() && std::none_of(names.begin(), names.end(),
                                              [](const std::string& name) { return storable_name(name); });
    };
    return none_storable(filter.streams) || none_storable(filter.types);
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

/// The JSON text of `value` (a checkpoint's state); InvalidAppend if it cannot be stored as JSON that reads
/// back the same (see json_value_problem).
inline std::string serialize_json(const nlohmann::json& value, std::string_view what) {
    if (auto problem = json_value_problem(value))
        throw InvalidAppend("the " + std::string{what} + " " + *problem);
    return serialize_json_named(value, [what] { return std::string{what}; });
}

/// The `part` ("payload", "metadata") of an event of `type` as JSON text; the error names both.
inline std::string serialize_json(const nlohmann::json& value, std::string_view part, std::string_view type) {
    return serialize_json_named(
        value, [part, type] { return std::string{part} + " of a " + detail::quoted(type) + " event"; });
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

/// An event ready for a store that keeps JSON as text: its id chosen, its timestamp stamped, its JSON
/// written. Call after check_append.
struct PendingEvent {
    std::string id;
    bool caller_id = false;  ///< the caller chose the id (else the store made it)
    std::string type;
    std::optional<std::string> payload;
    std::string dispatcher;
    std::int64_t timestamp = 0;           ///< nanoseconds since the epoch
    std::optional<std::string> metadata;  ///< empty: the empty object
};

[[nodiscard]] inline PendingEvent pending_event(const NewEvent& event) {
    PendingEvent result;
    result.caller_id = !event.id.empty();
    result.id = result.caller_id ? event.id : new_event_id();
    result.type = event.type;
    if (event.payload) result.payload = serialize_json(*event.payload, "payload", event.type);
    result.dispatcher = event.dispatcher;
    result.timestamp =
        std::chrono::duration_cast<std::chrono::nanoseconds>(stamped(event.timestamp).time_since_epoch())
            .count();
    if (!event.metadata.is_null() && !event.metadata.empty()) {
        result.metadata = serialize_json(event.metadata, "metadata", event.type);
    }
    return result;
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

#pragma once
// Durable domains: a StreamServer backed by an EventStore (memory, SQLite, ...).
//
//   krmx::SqliteEventStore store{"game.sqlite"};
//   krmx::StreamServer counter{host, "counter", counter::model(), {.persist = krmx::persist_to(store,
//   "counter")}}; krmx::restore_from(store, "counter", counter);   // on start, before users link
//
// Each accepted event is appended to the store (expecting exactly the revision before it, so a second
// server writing the same stream is refused instead of forking it) before anyone sees it confirmed.
// What a client has seen when the server crashes: every `stream/append` it received is stored, because
// the broadcast comes after the append returned; an event whose append had not returned was never
// confirmed to anyone, and its dispatcher's pending event expires or is dropped on relink. After a
// restart, restore_from rebuilds exactly the confirmed stream and relinking clients get it as history.
// The raw event text is kept in the record's metadata ("text"), so the history re-sends events exactly as
// they were received, as before the restart. The metadata also records the payload's schema version
// ("schema"), so that read models never upcast an event that was written in the current shape: pass the
// catalog they read with, `persist_to(store, "counter", catalog)`, once any type has an upcaster.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/event.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/sync/stream_server.hpp"

namespace krmx {

namespace detail {
template <EventStore Store, class VersionOf>
PersistHook persist_hook(Store& store, std::string stream_id, VersionOf version_of) {
    return [&store, stream_id = std::move(stream_id), version_of = std::move(version_of)](
               std::size_t position, std::string_view dispatcher, std::string_view event_text) {
        const Event event = event_from_json(nlohmann::json::parse(event_text));
        NewEvent record;
        record.type = event.type;
        record.payload = event.payload;
        record.dispatcher = std::string{dispatcher};
        const std::uint32_t version = version_of(std::string_view{event.type});
        record.metadata = {{"text", event_text},
                           {std::string{schema_metadata_key}, version == 0 ? 1 : version}};
        const auto expected =
            position == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(position - 1);
        (void)store.append(stream_id, expected, record);
    };
}
}  // namespace detail

/// A PersistHook that appends each accepted event to `store` under `stream_id`, recording it as schema
/// version 1 (see `schema_metadata_key`). The store must outlive the server.
template <EventStore Store>
[[nodiscard]] PersistHook persist_to(Store& store, std::string stream_id) {
    return detail::persist_hook(store, std::move(stream_id),
                                [](std::string_view) { return std::uint32_t{1}; });
}

/// The same, recording each event with the schema version `schemas` (e.g. the krmx::EventCatalog that read
/// models decode the store with) gives its type. Pass it as soon as a type the server writes has an
/// upcaster: an event recorded as an older version than it was written in is upcast again when read.
template <EventStore Store, SchemaVersions Schemas>
[[nodiscard]] PersistHook persist_to(Store& store, std::string stream_id, Schemas schemas) {
    return detail::persist_hook(store, std::move(stream_id),
                                [schemas = std::move(schemas)](std::string_view type) -> std::uint32_t {
                                    return schemas.schema_version(type);
                                });
}

/// Loads the events stored under `stream_id` into a server that has none yet. A stored event the model
/// refuses throws krmx::ModelError (see StreamServer::restore). Returns how many were loaded.
template <EventStore Store, class State>
std::size_t restore_from(const Store& store, std::string_view stream_id, StreamServer<State>& server) {
    if (server.size() != 0) {
        throw std::logic_error("krmx::restore_from: the server for '" + server.domain() +
                               "' has events already");
    }
    const auto records = store.read_stream(stream_id);
    for (const auto& r : records) {
        if (const auto text = r.metadata.find("text"); text != r.metadata.end() && text->is_string()) {
            server.restore(r.dispatcher, text->template get_ref<const std::string&>());
        } else {
            server.restore(r.dispatcher, Event{r.type, r.payload}.to_json().dump());
        }
    }
    return records.size();
}

}  // namespace krmx

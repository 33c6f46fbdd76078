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
// they were received, as before the restart.

#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/event.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/sync/stream_server.hpp"

namespace krmx {

/// A PersistHook that appends each accepted event to `store` under `stream_id`. The store must outlive
/// the server.
template <EventStore Store>
[[nodiscard]] PersistHook persist_to(Store& store, std::string stream_id) {
    return [&store, stream_id = std::move(stream_id)](std::size_t position, std::string_view dispatcher,
                                                      std::string_view event_text) {
        const Event event = event_from_json(nlohmann::json::parse(event_text));
        NewEvent record;
        record.type = event.type;
        record.payload = event.payload;
        record.dispatcher = std::string{dispatcher};
        record.metadata = {{"text", event_text}};
        const auto expected =
            position == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(position - 1);
        (void)store.append(stream_id, expected, record);
    };
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

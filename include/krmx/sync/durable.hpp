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

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

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
    return for_each_in_stream(store, stream_id, 4096, [&server](const RecordedEvent& r) {
        if (const auto text = r.metadata.find("text"); text != r.metadata.end() && text->is_string()) {
            server.restore(r.dispatcher, text->template get_ref<const std::string&>());
        } else {
            server.restore(r.dispatcher, Event{r.type, r.payload}.to_json().dump());
        }
    });
}

/// How an application runs a function on the thread that owns its StreamServers (its event loop).
using PostToLoop = std::function<void(std::function<void()>)>;

namespace detail {

// The record persist_async_to stores for one event: what persist_to(store, stream) stores (schema version
// 1), built on the writer thread.
inline NewEvent stored_record(std::string dispatcher, std::string event_text) {
    const Event event = event_from_json(nlohmann::json::parse(event_text));
    NewEvent record;
    record.type = event.type;
    record.payload = event.payload;
    record.dispatcher = std::move(dispatcher);
    record.metadata = {{"text", std::move(event_text)}, {std::string{schema_metadata_key}, 1}};
    return record;
}

// One writer thread per persist_async_to hook: takes batches in order, appends each in one go, and posts
// each outcome to the loop. Destroyed with the last copy of the hook (with its server): it finishes the
// batches it has, then stops.
template <EventStore Store>
class AsyncStreamWriter {
  public:
    struct Job {
        std::size_t first = 0;
        std::vector<std::pair<std::string, std::string>> events;  // dispatcher, text
        PersistDone done;
    };

    AsyncStreamWriter(Store& store, std::string stream_id, PostToLoop post)
        : store_(store), stream_id_(std::move(stream_id)), post_(std::move(post)) {
        thread_ = std::thread([this] { run(); });
    }
    AsyncStreamWriter(const AsyncStreamWriter&) = delete;
    AsyncStreamWriter& operator=(const AsyncStreamWriter&) = delete;
    ~AsyncStreamWriter() {
        {
            std::lock_guard lock{mutex_};
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }

    void submit(Job job) {
        {
            std::lock_guard lock{mutex_};
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
    }

  private:
    void run() {
        for (;;) {
            Job job;
            {
                std::unique_lock lock{mutex_};
                wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
                if (jobs_.empty()) return;
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            std::optional<std::string> error;
            try {
                std::vector<NewEvent> records;
                records.reserve(job.events.size());
                for (auto& [dispatcher, text] : job.events) {
                    records.push_back(stored_record(std::move(dispatcher), std::move(text)));
                }
                // Exactly after the last committed event: a second writer on the stream is refused, not
                // interleaved.
                const auto expected =
                    job.first == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(job.first - 1);
                (void)store_.append(stream_id_, expected, std::span<const NewEvent>{records});
            } catch (const std::exception& e) {
                error = e.what();
            } catch (...) {
                error = "the append failed";
            }
            try {
                post_([done = std::move(job.done), error = std::move(error)]() mutable {
                    done(std::move(error));
                });
            } catch (...) {
                // Nowhere to report to (the loop refused the function): the server keeps waiting, as it
                // would for a disk that hangs.
            }
        }
    }

    Store& store_;
    std::string stream_id_;
    PostToLoop post_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace detail

/// A PersistBatchHook (StreamServerOptions::persist_batch) that appends each batch to `store` under
/// `stream_id` in one append, on a writer thread of its own, expecting exactly the revision before the
/// batch; `post` runs the completion on the server's thread (the application's event loop):
///
///   krmx::StreamServer counter{host, "counter", counter::model(),
///                              {.persist_batch = krmx::persist_async_to(store, "counter", post)}};
///
/// The store must outlive the server, and `post` must stay callable until the server is destroyed (the
/// server's destructor waits for the append in flight). Events are stored as persist_to stores them, so
/// restore_from reads either.
template <EventStore Store>
[[nodiscard]] PersistBatchHook persist_async_to(Store& store, std::string stream_id, PostToLoop post) {
    if (!post) throw std::invalid_argument("krmx::persist_async_to: `post` is empty");
    auto writer =
        std::make_shared<detail::AsyncStreamWriter<Store>>(store, std::move(stream_id), std::move(post));
    return [writer](std::span<const PersistedEvent> batch, PersistDone done) {
        typename detail::AsyncStreamWriter<Store>::Job job;
        job.first = batch.front().position;
        job.events.reserve(batch.size());
        for (const auto& event : batch) {
            job.events.emplace_back(std::string{event.dispatcher}, std::string{event.event_text});
        }
        job.done = std::move(done);
        writer->submit(std::move(job));
    };
}

}  // namespace krmx

#pragma once
// krmx::durable(store): a domain whose events live in an EventStore (memory, SQLite, PostgreSQL, ...).
//
//   krmx::SqliteEventStore store{"game.sqlite"};
//   krmx::StreamDomain counter{server, "counter", counter::model(), {.durability = krmx::durable(store)}};
//
// The domain restores its stream from the store when it is made, before anyone links, and stores every
// accepted event before anyone hears of it. Each commit appends its batch in one append expecting exactly
// the revision before it, so a second server writing the same stream is refused instead of forking it.
// What a client has seen when the server crashes: every `stream/append` it received is stored, because the
// broadcast comes after the append returned; an event whose append had not returned was never confirmed to
// anyone, and its dispatcher's pending event expires or is dropped on relink. After a restart the domain
// restores exactly the confirmed stream, and relinking clients get it as history.
//
// Each record holds the event's type, its payload (as the model decoded it), its dispatcher, the schema
// version the model writes the type in (metadata "schema": read models never upcast an event written in the
// current shape), and the event text as received (metadata "text": histories re-send it byte for byte, as
// before the restart).
//
// Commits are pipelined by default: a writer thread appends each batch while the domain goes on accepting
// events (which wait for the next batch), and the outcome returns to the domain's event loop through the
// transport's `post` (krmx::net::WebSocketServer and krmx::testing::Hub have one; give `post` for another
// loop). `Commits::synchronous` appends in the call instead: every event is its own batch, and the loop
// waits for the store. One writer thread serves every domain opened from one `durable(...)` value.

#include <condition_variable>
#include <cstddef>
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

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/sync/durability.hpp"

namespace krmx {

/// How a durable domain's commits run.
enum class Commits : std::uint8_t {
    /// On a writer thread, one batch in flight at a time; events accepted meanwhile go in the next batch.
    pipelined,
    /// In the call: one event per batch, the domain's thread waits for the store.
    synchronous,
};

/// How an application runs a function on the thread that owns its domains (its event loop).
using PostToLoop = std::function<void(std::function<void()>)>;

struct DurableOptions {
    Commits commits = Commits::pipelined;
    /// Pipelined: how the outcome of a commit reaches the domain's thread. Empty: the transport's own
    /// `post` (its host's EventLoop).
    PostToLoop post = {};
    /// Each domain's events go to the store stream `stream_prefix + domain`.
    std::string stream_prefix = {};
};

namespace detail {

// The one record builder: what every durable domain stores for an event. Built on the domain's thread
// (the views of a CommitEvent end with the commit call), so that the writer thread only appends.
inline NewEvent stored_record(const CommitEvent& event) {
    NewEvent record;
    record.type = std::string{event.type};
    if (event.payload->ops() != nullptr && event.payload->ops()->has_payload) record.payload = event.payload->to_json();
    record.dispatcher = std::string{event.dispatcher};
    record.metadata = nlohmann::json::object();
    record.metadata["text"] = event.text;
    record.metadata[std::string{schema_metadata_key}] = event.schema;
    return record;
}

// Exactly after the last stored event: a second writer on the stream is refused, not interleaved.
inline ExpectedRevision revision_before(std::size_t first) {
    return first == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(first - 1);
}

// One writer thread for the domains of one durable(...) value: takes their batches in order, appends each
// in one go, and posts each outcome to its domain's loop. It finishes the batches it has, then stops, when
// the last domain and the last copy of the Durability are gone.
class StoreWriter {
  public:
    struct Job {
        std::function<void()> append;  // throws on failure
        std::function<void(std::optional<std::string>)> report;  // posts the outcome to the loop
    };

    StoreWriter() : thread_([this] { run(); }) {}
    StoreWriter(const StoreWriter&) = delete;
    StoreWriter& operator=(const StoreWriter&) = delete;
    ~StoreWriter() {
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
                job.append();
            } catch (const std::exception& e) {
                error = e.what();
            } catch (...) {
                error = "the append failed";
            }
            job.report(std::move(error));
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

template <EventStore Store>
class StoreJournal final : public DomainJournal {
  public:
    StoreJournal(Store& store, std::string stream, std::shared_ptr<StoreWriter> writer, EventLoop loop)
        : store_(store), stream_(std::move(stream)), writer_(std::move(writer)), loop_(std::move(loop)) {}
    StoreJournal(const StoreJournal&) = delete;
    StoreJournal& operator=(const StoreJournal&) = delete;
    // Waits for its batch in flight, so that nothing is posted for a domain that is gone.
    ~StoreJournal() override {
        std::unique_lock lock{state_->mutex};
        state_->idle.wait(lock, [this] { return state_->in_flight == 0; });
    }

    void restore(const std::function<void(RecordedEvent&)>& load) override {
        (void)for_each_in_stream(store_, stream_, 4096, [&](RecordedEvent& record) { load(record); });
    }

    void commit(std::span<const CommitEvent> batch, CommitDone done) override {
        const std::size_t first = batch.front().position;
        auto records = std::make_shared<std::vector<NewEvent>>();
        records->reserve(batch.size());
        for (const auto& event : batch) records->push_back(stored_record(event));
        if (!writer_) {
            (void)store_.append(stream_, revision_before(first), std::span<const NewEvent>{*records});
            done(std::nullopt);
            return;
        }
        {
            std::lock_guard lock{state_->mutex};
            ++state_->in_flight;
        }
        auto hold = loop_.hold ? loop_.hold() : nullptr;
        writer_->submit(StoreWriter::Job{
            [this, first, records] {
                (void)store_.append(stream_, revision_before(first), std::span<const NewEvent>{*records});
            },
            [post = loop_.post, done = std::move(done), hold = std::move(hold),
             state = state_](std::optional<std::string> error) mutable {
                try {
                    post([done = std::move(done), error = std::move(error), hold = std::move(hold)]() mutable {
                        done(std::move(error));
                    });
                } catch (...) {
                    // The loop could not take the function (out of memory): the domain waits for this commit
                    // as for a disk that hangs; nothing else can reach its thread.
                }
                std::lock_guard lock{state->mutex};
                --state->in_flight;
                state->idle.notify_all();
            }});
    }

    [[nodiscard]] std::optional<StoreStatistics> store_statistics() const override {
        if constexpr (requires(const Store& s) {
                          { s.statistics() } -> std::convertible_to<StoreStatistics>;
                      }) {
            return store_.statistics();
        } else {
            return std::nullopt;
        }
    }

  private:
    struct State {
        std::mutex mutex;
        std::condition_variable idle;
        std::size_t in_flight = 0;
    };

    Store& store_;
    std::string stream_;
    std::shared_ptr<StoreWriter> writer_;  // none: synchronous commits
    EventLoop loop_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace detail

/// Durability on `store` (which must outlive every domain that uses it). See the notes at the top.
template <EventStore Store>
[[nodiscard]] Durability durable(Store& store, DurableOptions options = {}) {
    // Made with the first pipelined domain; shared by every domain opened from this value.
    auto writer = std::make_shared<std::shared_ptr<detail::StoreWriter>>();
    auto mutex = std::make_shared<std::mutex>();
    return Durability{[&store, options = std::move(options), writer, mutex](
                          std::string_view domain, const EventLoop& host_loop) -> std::unique_ptr<DomainJournal> {
        std::string stream = options.stream_prefix + std::string{domain};
        if (options.commits == Commits::synchronous) {
            return std::make_unique<detail::StoreJournal<Store>>(store, std::move(stream), nullptr, EventLoop{});
        }
        // A loop of the caller's own replaces the host's, work tokens included (they belong to the host's).
        EventLoop loop = options.post ? EventLoop{options.post, {}} : host_loop;
        if (!loop.post) {
            throw std::invalid_argument(
                "krmx::durable: pipelined commits need a way back to the domain's thread, and this transport "
                "has no post(): pass {.post = ...} or {.commits = krmx::Commits::synchronous}");
        }
        std::shared_ptr<detail::StoreWriter> shared;
        {
            std::lock_guard lock{*mutex};
            if (!*writer) *writer = std::make_shared<detail::StoreWriter>();
            shared = *writer;
        }
        return std::make_unique<detail::StoreJournal<Store>>(store, std::move(stream), std::move(shared),
                                                              std::move(loop));
    }};
}

}  // namespace krmx

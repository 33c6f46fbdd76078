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
// waits for the store. One writer thread serves every domain opened from one `durable(...)` value, and a
// second one writes their captures of the state as JSON (DomainJournal::run_aside), so that neither the loop
// nor the commits wait while a large state is written.

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
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/snapshot.hpp"
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
    /// How much of each domain's stream stays in memory, and how often it is snapshot.
    MemoryPolicy memory = {};
    /// Where snapshots go (any CheckpointStore; it must outlive the domains): a restart loads the newest
    /// usable one and replays only the events after it. Empty: no snapshots, a restart replays everything.
    /// The model must have them on (StreamModel::snapshots).
    CheckpointStoreRef snapshots = {};
};

namespace detail {

// The one record builder: what every durable domain stores for an event. Built on the domain's thread
// (the views of a CommitEvent end with the commit call), so that the writer thread only appends.
inline NewEvent stored_record(const CommitEvent& event) {
    NewEvent record;
    record.type = std::string{event.type};
    record.id = std::string{event.id};
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

// The thread on which the domains of one durable(...) value write their captures as JSON (run_aside): not
// the writer's, whose commits would wait behind a large state. Started by the first capture.
class AsideWriter {
  public:
    StoreWriter& get() {
        std::lock_guard lock{mutex_};
        if (!writer_) writer_.emplace();
        return *writer_;
    }

  private:
    std::mutex mutex_;
    std::optional<StoreWriter> writer_;
};

template <EventStore Store>
class StoreJournal final : public DomainJournal {
  public:
    StoreJournal(Store& store, std::string stream, std::shared_ptr<StoreWriter> writer,
                 std::shared_ptr<AsideWriter> aside, EventLoop loop, MemoryPolicy memory, CheckpointStoreRef snapshots)
        : store_(store),
          stream_(std::move(stream)),
          writer_(std::move(writer)),
          aside_(std::move(aside)),
          loop_(std::move(loop)),
          memory_(memory),
          snapshots_(std::move(snapshots)) {}
    StoreJournal(const StoreJournal&) = delete;
    StoreJournal& operator=(const StoreJournal&) = delete;
    // Waits for its work in flight, so that nothing is posted for a domain that is gone.
    ~StoreJournal() override {
        std::unique_lock lock{state_->mutex};
        state_->idle.wait(lock, [this] { return state_->in_flight == 0; });
    }

    void restore(const std::function<void(RecordedEvent&)>& load) override {
        (void)for_each_in_stream(store_, stream_, 4096, [&](RecordedEvent& record) { load(record); });
    }

    bool restore_after(const StoredSnapshot& snapshot, const std::function<void(RecordedEvent&)>& load) override {
        if (snapshot.position == 0) {
            restore(load);
            return true;
        }
        Revision from = snapshot.position - 1;
        auto first = store_.read_stream(stream_, from, 1);
        if (first.empty() || !snapshot_follows(snapshot, first.front())) return false;
        for (from = snapshot.position;;) {
            auto records = store_.read_stream(stream_, from, 4096);
            for (auto& record : records) load(record);
            if (records.size() < 4096) return true;
            from = records.back().revision + 1;
        }
    }

    void commit(std::span<const CommitEvent> batch, CommitDone done) override {
        const std::size_t first = batch.front().position;
        auto records = std::make_shared<std::vector<NewEvent>>();
        records->reserve(batch.size());
        for (const auto& event : batch) records->push_back(stored_record(event));
        run(
            [this, first, records] {
                (void)store_.append(stream_, revision_before(first), std::span<const NewEvent>{*records});
            },
            std::move(done));
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

    [[nodiscard]] MemoryPolicy memory_policy() const override { return memory_; }
    [[nodiscard]] bool keeps_snapshots() const override { return static_cast<bool>(snapshots_); }
    [[nodiscard]] std::vector<StoredSnapshot> snapshots(std::uint32_t revision, SnapshotStatistics& statistics) override {
        if (!snapshots_) return {};
        return load_snapshots(snapshots_, stream_, revision, statistics);
    }
    void save_snapshot(std::uint32_t revision, StoredSnapshot snapshot, SaveDone done) override {
        if (!snapshots_) return DomainJournal::save_snapshot(revision, std::move(snapshot), std::move(done));
        auto shared = std::make_shared<StoredSnapshot>(std::move(snapshot));
        run([this, revision, shared] { krmx::save_snapshot(snapshots_, stream_, revision, *shared); }, std::move(done));
    }

    // Pipelined: on a second thread, shared like the writer, made when first needed.
    void run_aside(std::function<void()> work, SaveDone done) override {
        run_on(aside_ ? &aside_->get() : nullptr, std::move(work), std::move(done));
    }

    void read(std::size_t from, std::size_t count, ReadDone done) override {
        auto records = std::make_shared<std::vector<RecordedEvent>>();
        run([this, from, count, records] { *records = store_.read_stream(stream_, from, count); },
            [records, done = std::move(done)](std::optional<std::string> error) mutable {
                done(error ? std::vector<RecordedEvent>{} : std::move(*records), std::move(error));
            });
    }

  private:
    // Runs `work` in the call (synchronous commits) or on the writer thread after everything handed over
    // before it, and reports how it ended to `done`: in the call, or posted to the domain's loop.
    void run(std::function<void()> work, std::function<void(std::optional<std::string>)> done) {
        run_on(writer_.get(), std::move(work), std::move(done));
    }
    // The same on `writer`, or in the call without one.
    void run_on(StoreWriter* writer, std::function<void()> work, std::function<void(std::optional<std::string>)> done) {
        if (!writer) {
            run_in_call(work, done);
            return;
        }
        {
            std::lock_guard lock{state_->mutex};
            ++state_->in_flight;
        }
        auto hold = loop_.hold ? loop_.hold() : nullptr;
        writer->submit(StoreWriter::Job{
            std::move(work),
            [post = loop_.post, done = std::move(done), hold = std::move(hold),
             state = state_](std::optional<std::string> error) mutable {
                try {
                    post([done = std::move(done), error = std::move(error), hold = std::move(hold)]() mutable {
                        done(std::move(error));
                    });
                } catch (...) {
                    // The loop could not take the function (out of memory): the domain waits for this
                    // outcome as for a disk that hangs; nothing else can reach its thread.
                }
                std::lock_guard lock{state->mutex};
                --state->in_flight;
                state->idle.notify_all();
            }});
    }

    struct State {
        std::mutex mutex;
        std::condition_variable idle;
        std::size_t in_flight = 0;
    };

    Store& store_;
    std::string stream_;
    std::shared_ptr<StoreWriter> writer_;  // none: synchronous commits
    std::shared_ptr<AsideWriter> aside_;   // none: synchronous commits
    EventLoop loop_;
    MemoryPolicy memory_;
    CheckpointStoreRef snapshots_;
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace detail

/// Durability on `store` (which must outlive every domain that uses it). See the notes at the top.
template <EventStore Store>
[[nodiscard]] Durability durable(Store& store, DurableOptions options = {}) {
    // Made with the first pipelined domain; shared by every domain opened from this value.
    auto writer = std::make_shared<std::shared_ptr<detail::StoreWriter>>();
    auto aside = std::make_shared<detail::AsideWriter>();
    auto mutex = std::make_shared<std::mutex>();
    return Durability{[&store, options = std::move(options), writer, aside, mutex](
                          std::string_view domain, const EventLoop& host_loop) -> std::unique_ptr<DomainJournal> {
        std::string stream = options.stream_prefix + std::string{domain};
        if (options.commits == Commits::synchronous) {
            return std::make_unique<detail::StoreJournal<Store>>(store, std::move(stream), nullptr, nullptr, EventLoop{},
                                                                  options.memory, options.snapshots);
        }
        // A loop of the caller's own replaces the host's, work tokens included (they belong to the host's).
        EventLoop loop = options.post ? EventLoop{.post = options.post, .hold = {}, .after = {}} : host_loop;
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
        return std::make_unique<detail::StoreJournal<Store>>(store, std::move(stream), std::move(shared), aside,
                                                              std::move(loop), options.memory, options.snapshots);
    }};
}

}  // namespace krmx

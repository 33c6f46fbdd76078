#pragma once
// A durable event store in one SQLite file (WAL mode). Link the `krmx::sqlite` CMake target.
//
// Writes: one writer thread owns the write connection and commits appends in batches (group commit):
// appends that arrive while a commit is in flight go into the next transaction, up to `max_batch_events`
// events, optionally waiting `max_batch_delay` for more. `append()` returns only after the transaction
// holding its events has committed, so an acknowledged event is never lost:
// - `SqliteDurability::synced`: every commit is fsynced (`synchronous=FULL`) before any append in it returns;
//   acknowledged events survive a crash of the process and of the machine.
// - `SqliteDurability::group_commit`: `synchronous=NORMAL`; acknowledged events survive a crash of the
//   process (kill -9); a power loss may drop the last commits, never corrupt the file.
// Positions are assigned inside the write transaction and published to subscribers after the commit, in
// position order. Reads use a pool of read connections and never wait for the writer.
// Every record carries a checksum, verified on read: a damaged record is reported (CorruptRecord), never
// served. A record that is missing altogether (a damaged page, a row deleted by hand) is reported too:
// reads check that positions and each stream's revisions have no hole up to what is known committed. Threads:
// the writer, a WAL checkpointer, and one per subscription (see SubscriptionHandlers). Another process
// writing the same file is safe (SQLite serializes writers and positions are read inside each write
// transaction), but this store's subscribers learn of its events only at this store's next commit.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/subscription.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/detail/sqlite_checkpointer.hpp"
#include "krmx/store/detail/sqlite_holes.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

enum class SqliteDurability {
    /// Each commit is fsynced before its appends return.
    synced,
    /// Commits are not fsynced: safe against a process crash, not against power loss; much faster.
    group_commit,
};

struct SqliteEventStoreOptions {
    SqliteDurability durability = SqliteDurability::synced;
    /// How long the writer waits for more appends before committing a batch that is not full.
    /// 0: commit as soon as the writer is free (appends arriving during a commit still share the next one).
    std::chrono::microseconds max_batch_delay{0};
    /// The most events one transaction takes.
    std::size_t max_batch_events = 8192;
};

class SqliteEventStore {
  public:
    explicit SqliteEventStore(std::filesystem::path path, SqliteEventStoreOptions options = {})
        : path_(std::move(path)), options_(options) {
        options_.max_batch_events = std::max<std::size_t>(options_.max_batch_events, 1);
        writer_ = detail::open_krmx_file(path_);
        writer_->exec(options_.durability == SqliteDurability::synced ? "PRAGMA synchronous=FULL"
                                                                      : "PRAGMA synchronous=NORMAL");
        writer_->exec("PRAGMA cache_size=-32768");
        sql_ = std::make_unique<WriterStatements>(writer_->handle());
        // The streams count every event ever appended: a lost last row still leaves the head where it was,
        // so that reads up to it notice the hole.
        subscriptions_.publish(static_cast<Position>(
            writer_->query_int("SELECT max((SELECT coalesce(max(position), 0) FROM krmx_events), "
                               "(SELECT coalesce(sum(revision + 1), 0) FROM krmx_streams))")));
        checkpointer_.start(writer_->handle());
        writer_thread_ = std::thread([this] { write_loop(); });
    }

    SqliteEventStore(const SqliteEventStore&) = delete;
    SqliteEventStore& operator=(const SqliteEventStore&) = delete;

    /// Stops subscriptions, commits the appends already queued, and closes the file.
    ~SqliteEventStore() {
        subscriptions_.close();
        {
            std::lock_guard lock{queue_mutex_};
            stopping_ = true;
        }
        queue_changed_.notify_all();
        writer_thread_.join();
        checkpointer_.stop();
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected,
                        std::span<const NewEvent> events) {
        detail::check_append(stream, events);
        // Serialize and hash on the caller's thread: the writer thread only binds and inserts.
        auto request = std::make_unique<Request>();
        request->stream = std::string{stream};
        request->expected = expected;
        request->events.reserve(events.size());
        for (const NewEvent& event : events) request->events.push_back(pending(stream, event));
        auto done = request->done.get_future();
        {
            std::lock_guard lock{queue_mutex_};
            if (stopping_)
                throw StoreError("the SQLite event store " + detail::quoted(path_.string()) + " is closing");
            queued_events_ += request->events.size();
            queue_.push_back(std::move(request));
        }
        queue_changed_.notify_one();
        return done.get();
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected, const NewEvent& event) {
        return append(stream, expected, std::span<const NewEvent>{&event, 1});
    }

    [[nodiscard]] std::vector<RecordedEvent> read_stream(std::string_view stream, Revision from_revision = 0,
                                                         std::size_t max_count = read_unbounded) const {
        std::vector<RecordedEvent> result;
        if (!detail::storable_name(stream)) return result;  // no event has it (see EventStore)
        auto reader = readers_.borrow(path_);
        // The stream's revision first: every event up to it is committed, so each must be there.
        const auto found = reader->find_stream(stream);
        if (!found) return result;
        auto& statement = reader->connection.statement(
            "SELECT position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata, "
            "checksum "
            "FROM krmx_events WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3");
        detail::Reset reset{statement};
        statement.bind(1, found->id);
        statement.bind(2, to_sql(from_revision));
        statement.bind(3, limit(max_count));
        while (statement.step()) {
            decode_into(result, statement, stream);
            detail::expect_revision(stream, result.back().revision, from_revision + (result.size() - 1),
                                    found->revision);
        }
        detail::expect_stream_end(stream, from_revision + result.size(), found->revision,
                                  result.size() < max_count);
        return result;
    }

    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after_position = 0,
                                                      std::size_t max_count = read_unbounded,
                                                      const EventFilter& filter = {}) const {
        return read_range(after_position, std::numeric_limits<std::int64_t>::max(), max_count, filter);
    }

    [[nodiscard]] std::optional<Revision> stream_revision(std::string_view stream) const {
        if (!detail::storable_name(stream)) return std::nullopt;
        auto reader = readers_.borrow(path_);
        auto& statement = reader->connection.statement("SELECT revision FROM krmx_streams WHERE name = ?1");
        detail::Reset reset{statement};
        statement.bind(1, stream);
        if (!statement.step()) return std::nullopt;
        return static_cast<Revision>(statement.int64(0));
    }

    [[nodiscard]] Position head_position() const noexcept { return subscriptions_.head(); }

    /// Delivery happens on a thread owned by the subscription; cancel it through the returned handle.
    [[nodiscard]] Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                                         EventFilter filter = {}) {
        return subscriptions_.subscribe(from, std::move(handlers), std::move(filter));
    }

    /// What went wrong without an exception to say so (see StoreStatistics).
    [[nodiscard]] StoreStatistics statistics() const noexcept {
        return {.error_handler_failures = subscriptions_.error_handler_failures(),
                .failed_checkpoints = checkpointer_.failures()};
    }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    /// Moves the write-ahead log into the database file and empties it (before measuring size or copying
    /// the file). Safe at any time; SQLite also does this on its own as the log grows.
    void checkpoint_wal() const {
        auto reader = readers_.borrow(path_);
        reader->connection.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    }

  private:
    static constexpr std::size_t subscription_batch = 512;

    // An event ready for the writer: JSON already serialized and the position-independent part hashed.
    struct Pending : detail::PendingEvent {
        std::uint64_t content_hash = 0;
    };

    struct Request {
        std::string stream;
        ExpectedRevision expected = ExpectedRevision::any();
        std::vector<Pending> events;
        std::promise<AppendResult> done;
    };

    // The writer's statements, prepared once.
    struct WriterStatements {
        explicit WriterStatements(sqlite3* db)
            : begin(db, "BEGIN IMMEDIATE"),
              commit(db, "COMMIT"),
              last_position(db, "SELECT coalesce(max(position), 0) FROM krmx_events"),
              find_stream(db, "SELECT id, revision FROM krmx_streams WHERE name = ?1"),
              insert_stream(db, "INSERT INTO krmx_streams (name, revision) VALUES (?1, ?2)"),
              update_stream(db, "UPDATE krmx_streams SET revision = ?2 WHERE id = ?1"),
              insert_event(db,
                           "INSERT INTO krmx_events (position, stream_id, revision, event_id, type, payload, "
                           "dispatcher, timestamp, metadata, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                           "?8, ?9, ?10)"),
              find_event(
                  db,
                  "SELECT e.position, s.name, e.revision, e.type, e.payload, e.dispatcher, e.metadata "
                  "FROM krmx_events e JOIN krmx_streams s ON s.id = e.stream_id WHERE e.event_id = ?1") {}
        detail::SqliteStatement begin, commit, last_position, find_stream, insert_stream, update_stream,
            insert_event, find_event;
    };

    // A read connection and the names of the streams it has met (streams are never renamed or removed).
    struct Reader {
        explicit Reader(const std::filesystem::path& path) : connection(path) {
            connection.exec("PRAGMA query_only=1");
            // Reads straight from the mapped file: no copy per page and no system call per page.
            connection.exec("PRAGMA mmap_size=1073741824");
        }

        struct StreamRow {
            std::int64_t id;
            Revision revision;  // of the stream's last event
        };
        std::optional<StreamRow> find_stream(std::string_view name) {
            auto& find = connection.statement("SELECT id, revision FROM krmx_streams WHERE name = ?1");
            detail::Reset reset{find};
            find.bind(1, name);
            if (!find.step()) return std::nullopt;
            return StreamRow{find.int64(0), static_cast<Revision>(find.int64(1))};
        }

        const std::string& stream_name(std::int64_t id) {
            if (last_stream != nullptr && last_stream->first == id) return last_stream->second;
            const auto known = stream_names.find(id);
            if (known != stream_names.end()) {
                last_stream = &*known;
                return known->second;
            }
            auto& find = connection.statement("SELECT name FROM krmx_streams WHERE id = ?1");
            detail::Reset reset{find};
            find.bind(1, id);
            if (!find.step()) {
                throw CorruptRecord("an event refers to stream id " + std::to_string(id) +
                                    ", which does not exist");
            }
            last_stream = &*stream_names.emplace(id, std::string{find.text(0)}).first;
            return last_stream->second;
        }

        detail::SqliteConnection connection;
        std::unordered_map<std::int64_t, std::string> stream_names;
        const std::pair<const std::int64_t, std::string>* last_stream =
            nullptr;  // consecutive events often share it
    };

    // Read connections, opened on demand and reused; each is used by one thread at a time.
    class ReaderPool {
      public:
        struct Return {
            ReaderPool* pool;
            void operator()(Reader* reader) const noexcept { pool->give_back(reader); }
        };
        using Lease = std::unique_ptr<Reader, Return>;

        ReaderPool() = default;
        ReaderPool(const ReaderPool&) = delete;
        ReaderPool& operator=(const ReaderPool&) = delete;
        ~ReaderPool() {
            for (auto* reader : idle_) delete reader;
        }

        Lease borrow(const std::filesystem::path& path) {
            {
                std::lock_guard lock{mutex_};
                if (!idle_.empty()) {
                    auto* reader = idle_.back();
                    idle_.pop_back();
                    return Lease{reader, Return{this}};
                }
            }
            return Lease{std::make_unique<Reader>(path).release(), Return{this}};
        }

      private:
        void give_back(Reader* reader) noexcept {
            try {
                std::lock_guard lock{mutex_};
                idle_.push_back(reader);
            } catch (...) {
                delete reader;  // closed instead of kept: nothing is lost, the next borrow opens another
            }
        }
        std::mutex mutex_;
        std::vector<Reader*> idle_;
    };

    static std::int64_t to_sql(std::uint64_t value) {
        return static_cast<std::int64_t>(
            std::min<std::uint64_t>(value, std::numeric_limits<std::int64_t>::max()));
    }
    static std::int64_t limit(std::size_t max_count) { return to_sql(max_count); }

    static std::uint64_t content_hash(std::string_view stream, const Pending& event) {
        detail::RecordHasher hasher;
        hasher.add(stream)
            .add(event.id)
            .add(event.type)
            .add_optional(event.payload.has_value(), event.payload.value_or(""));
        hasher.add(event.dispatcher).add(static_cast<std::uint64_t>(event.timestamp));
        hasher.add_optional(event.metadata.has_value(), event.metadata.value_or(""));
        return hasher.value();
    }
    static std::int64_t checksum(std::uint64_t content, Position position, Revision revision) {
        return static_cast<std::int64_t>(detail::RecordHasher{content}.add(position).add(revision).value());
    }

    static Pending pending(std::string_view stream, const NewEvent& event) {
        Pending result{detail::pending_event(event)};
        result.content_hash = content_hash(stream, result);
        return result;
    }

    // Columns: position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata,
    // checksum. The checksum is verified before anything is parsed or returned.
    // Decodes in place at the end of `into` (no move of the record); nothing is added on failure.
    static void decode_into(std::vector<RecordedEvent>& into, const detail::SqliteStatement& row,
                            std::string_view stream) {
        RecordedEvent& event = into.emplace_back();
        try {
            decode(row, stream, event);
        } catch (...) {
            into.pop_back();
            throw;
        }
    }

    static void decode(const detail::SqliteStatement& row, std::string_view stream, RecordedEvent& event) {
        event.position = static_cast<Position>(row.int64(0));
        event.revision = static_cast<Revision>(row.int64(2));
        const std::string_view id = row.text(3);
        const std::string_view type = row.text(4);
        const auto payload = row.optional_text(5);
        const std::string_view dispatcher = row.text(6);
        const std::int64_t timestamp = row.int64(7);
        const auto metadata = row.optional_text(8);

        detail::RecordHasher hasher;
        hasher.add(stream).add(id).add(type).add_optional(payload.has_value(), payload.value_or(""));
        hasher.add(dispatcher).add(static_cast<std::uint64_t>(timestamp));
        hasher.add_optional(metadata.has_value(), metadata.value_or(""));
        if (checksum(hasher.value(), event.position, event.revision) != row.int64(9)) {
            throw CorruptRecord("the event at position " + std::to_string(event.position) +
                                " failed its checksum: the record is damaged");
        }
        try {
            if (payload) event.payload = nlohmann::json::parse(payload->begin(), payload->end());
            if (metadata) event.metadata = nlohmann::json::parse(metadata->begin(), metadata->end());
        } catch (const nlohmann::json::exception& e) {
            throw CorruptRecord("the event at position " + std::to_string(event.position) +
                                " holds JSON that does not parse: " + e.what());
        }
        event.stream = stream;
        event.id = id;
        event.type = type;
        event.dispatcher = dispatcher;
        event.timestamp = std::chrono::system_clock::time_point{
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::nanoseconds{timestamp})};
    }

    std::vector<RecordedEvent> read_range(Position after, Position up_to, std::size_t max_count,
                                          const EventFilter& filter) const {
        if (detail::matches_nothing(filter)) return {};
        // The head first: every event up to it is committed, so a read that stops short of it lost some.
        const Position known_head = std::min(up_to, subscriptions_.head());
        std::string sql =
            "SELECT position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata, "
            "checksum "
            "FROM krmx_events WHERE position > ?1 AND position <= ?2";
        int next = 4;
        // Names no event can have are left out (see EventStore).
        const auto storable = [](const std::vector<std::string>& names) {
            return static_cast<std::size_t>(std::count_if(names.begin(), names.end(), detail::storable_name));
        };
        const auto in_list = [&](std::string_view column, std::size_t count, std::string_view close) {
            if (count == 0) return;
            sql += column;
            for (std::size_t i = 0; i < count; ++i) sql += (i == 0 ? "?" : ", ?") + std::to_string(next++);
            sql += close;
        };
        in_list(" AND stream_id IN (SELECT id FROM krmx_streams WHERE name IN (", storable(filter.streams),
                "))");
        in_list(" AND type IN (", storable(filter.types), ")");
        sql += " ORDER BY position LIMIT ?3";

        auto reader = readers_.borrow(path_);
        auto& statement = reader->connection.statement(sql);
        detail::Reset reset{statement};
        statement.bind(1, to_sql(after));
        statement.bind(2, to_sql(up_to));
        statement.bind(3, limit(max_count));
        int index = 4;
        for (const auto& names : {&filter.streams, &filter.types}) {
            for (const auto& name : *names) {
                if (detail::storable_name(name)) statement.bind(index++, std::string_view{name});
            }
        }
        std::vector<RecordedEvent> result;
        result.reserve(std::min<std::size_t>(max_count, 4096));
        const bool unfiltered = filter.empty();
        while (statement.step()) {
            decode_into(result, statement, reader->stream_name(statement.int64(1)));
            if (unfiltered) detail::expect_position(result.back().position, after + result.size());
        }
        const bool short_read = result.size() < max_count;  // then it covers everything up to the head
        if (unfiltered) {
            detail::expect_log_end(after + result.size() + 1, known_head, short_read);
        } else {
            Position end = result.empty() ? after : result.back().position;
            if (short_read) end = std::max(end, known_head);
            if (end > after) detail::check_dense(reader->connection, after, end);
        }
        return result;
    }

    // ---- the writer thread ----

    void write_loop() {
        for (;;) {
            std::vector<std::unique_ptr<Request>> batch;
            {
                std::unique_lock lock{queue_mutex_};
                queue_changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping, and everything queued is committed
                if (options_.max_batch_delay.count() > 0 && !stopping_) {
                    queue_changed_.wait_for(lock, options_.max_batch_delay, [&] {
                        return stopping_ || queued_events_ >= options_.max_batch_events;
                    });
                }
                std::size_t events = 0;
                while (!queue_.empty() && (batch.empty() || events + queue_.front()->events.size() <=
                                                                options_.max_batch_events)) {
                    events += queue_.front()->events.size();
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
                queued_events_ -= events;
            }
            commit(batch);
        }
    }

    // One transaction for the whole batch. A request that fails its checks (expected revision, duplicate
    // id) fails alone; it wrote nothing. A failure while writing rolls back the whole batch.
    void commit(std::vector<std::unique_ptr<Request>>& batch) {
        std::vector<std::optional<AppendResult>> results(batch.size());
        std::vector<std::exception_ptr> errors(batch.size());
        Position head = 0;
        try {
            sql_->begin.run();
            try {
                // Read inside the transaction: correct even if another process wrote to the file.
                {
                    detail::Reset reset{sql_->last_position};
                    head =
                        sql_->last_position.step() ? static_cast<Position>(sql_->last_position.int64(0)) : 0;
                }
                for (std::size_t i = 0; i < batch.size(); ++i) {
                    try {
                        results[i] = apply(*batch[i], head);
                    } catch (const CheckFailed&) {
                        errors[i] = std::current_exception();
                    }
                }
                sql_->commit.run();
            } catch (...) {
                sqlite3_exec(writer_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        } catch (...) {
            const auto error = std::current_exception();
            for (auto& request : batch) request->done.set_exception(error);
            return;
        }
        subscriptions_.publish(head);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (errors[i]) {
                batch[i]->done.set_exception(unwrap(errors[i]));
            } else {
                batch[i]->done.set_value(*results[i]);
            }
        }
    }

    // Wraps a check failure so the batch can tell it apart from a failure while writing.
    struct CheckFailed {
        std::exception_ptr error;
    };
    static std::exception_ptr unwrap(const std::exception_ptr& wrapped) {
        try {
            std::rethrow_exception(wrapped);
        } catch (const CheckFailed& failed) {
            return failed.error;
        } catch (...) {
            return std::current_exception();
        }
    }

    AppendResult apply(const Request& request, Position& head) {
        std::optional<std::int64_t> stream_id;
        std::optional<Revision> actual;
        std::optional<AppendResult> repeat;
        try {
            auto& find = sql_->find_stream;
            {
                detail::Reset reset{find};
                find.bind(1, std::string_view{request.stream});
                if (find.step()) {
                    stream_id = find.int64(0);
                    actual = static_cast<Revision>(find.int64(1));
                }
            }
            repeat = find_repeat(request);
            if (!repeat && !request.expected.matches(actual)) {
                throw WrongExpectedRevision(request.stream, request.expected, actual);
            }
        } catch (const StoreError&) {
            throw CheckFailed{std::current_exception()};
        }
        if (repeat) return *repeat;

        const Revision first_revision = actual ? *actual + 1 : 0;
        const Revision last_revision = first_revision + request.events.size() - 1;
        if (!stream_id) {
            auto& insert = sql_->insert_stream;
            detail::Reset reset{insert};
            insert.bind(1, std::string_view{request.stream});
            insert.bind(2, to_sql(last_revision));
            insert.run();
            stream_id = sqlite3_last_insert_rowid(writer_->handle());
        } else {
            auto& update = sql_->update_stream;
            detail::Reset reset{update};
            update.bind(1, *stream_id);
            update.bind(2, to_sql(last_revision));
            update.run();
        }
        auto& insert = sql_->insert_event;
        const Position first_position = head + 1;
        Revision revision = first_revision;
        for (const Pending& event : request.events) {
            const Position position = ++head;
            detail::Reset reset{insert};
            insert.bind(1, to_sql(position));
            insert.bind(2, *stream_id);
            insert.bind(3, to_sql(revision));
            insert.bind(4, std::string_view{event.id});
            insert.bind(5, std::string_view{event.type});
            insert.bind(6, event.payload);
            insert.bind(7, std::string_view{event.dispatcher});
            insert.bind(8, event.timestamp);
            insert.bind(9, event.metadata);
            insert.bind(10, checksum(event.content_hash, position, revision));
            insert.run();
            ++revision;
        }
        return AppendResult{first_position, head, first_revision, last_revision};
    }

    // See MemoryEventStore::find_repeat: the same rules, over stored rows.
    std::optional<AppendResult> find_repeat(const Request& request) {
        auto& lookup = sql_->find_event;
        std::optional<AppendResult> found;
        for (std::size_t i = 0; i < request.events.size(); ++i) {
            const Pending& event = request.events[i];
            if (!event.caller_id) {
                if (found) throw DuplicateEventId(event.id, found->first_position);
                continue;  // a fresh id cannot be stored yet
            }
            detail::Reset reset{lookup};
            lookup.bind(1, std::string_view{event.id});
            if (!lookup.step()) {
                if (found) throw DuplicateEventId(request.events[0].id, found->first_position);
                continue;
            }
            const auto position = static_cast<Position>(lookup.int64(0));
            const auto revision = static_cast<Revision>(lookup.int64(2));
            const bool fits = lookup.text(1) == request.stream && same_json(lookup, 4, event.payload) &&
                              lookup.text(3) == event.type && lookup.text(5) == event.dispatcher &&
                              same_json(lookup, 6, event.metadata, true) &&
                              (found ? revision == found->last_revision + 1
                                     : i == 0 && detail::repeat_fits(request.expected, revision));
            if (!fits) throw DuplicateEventId(event.id, position);
            if (!found) found = AppendResult{position, position, revision, revision, true};
            found->last_position = position;
            found->last_revision = revision;
        }
        return found;
    }

    // JSON equality of a stored column and a pending text; with `empty_object`, NULL means `{}`.
    static bool same_json(const detail::SqliteStatement& row, int column,
                          const std::optional<std::string>& text, bool empty_object = false) {
        const auto as_json = [&](bool present, std::string_view value) -> std::optional<nlohmann::json> {
            if (!present) return empty_object ? std::optional{nlohmann::json::object()} : std::nullopt;
            return nlohmann::json::parse(value.begin(), value.end(), nullptr, false);
        };
        return as_json(!row.is_null(column), row.text(column)) ==
               as_json(text.has_value(), text.value_or(""));
    }

    std::filesystem::path path_;
    SqliteEventStoreOptions options_;
    std::unique_ptr<detail::SqliteConnection> writer_;  // used by the writer thread only (after construction)
    std::unique_ptr<WriterStatements> sql_;             // finalized before writer_ closes (declared after it)
    mutable ReaderPool readers_;

    std::mutex queue_mutex_;
    std::condition_variable queue_changed_;
    std::deque<std::unique_ptr<Request>> queue_;
    std::size_t queued_events_ = 0;
    bool stopping_ = false;
    std::thread writer_thread_;

    detail::SqliteCheckpointer checkpointer_{path_};

    detail::LocalSubscriptions subscriptions_{std::bind_front(&SqliteEventStore::read_range, this),
                                              subscription_batch};
};

static_assert(EventStore<SqliteEventStore>);

}  // namespace krmx

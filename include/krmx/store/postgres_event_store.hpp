#pragma once
// A durable event store in a PostgreSQL database, shared by any number of processes on any number of
// machines (game servers, read models, tools). Link the `krmx::postgres` CMake target.
//
// Positions: dense, and visible in position order to every connection. A `BIGSERIAL` column would not do:
// sequences hand out numbers when a transaction asks, and transactions commit in another order, so a reader
// could see 8 committed while 7 is still in flight, move on, and never see 7 (the "sequence gap" hazard of
// PostgreSQL event stores and outboxes). Here every append takes one transaction-scoped advisory lock per
// schema before it reads the head; positions are `max(position) + 1 ...` read under that lock, and the lock
// is released only when the transaction has committed (or rolled back). So the transaction holding n + 1
// started after the one holding n had committed and become visible: any snapshot that sees n + 1 also sees
// n and everything below it, and a rolled-back append leaves no hole, because the next one reads the head
// again. `max(position)` read by anyone is therefore a head below which nothing is missing, and subscribers
// read only up to such a head. The price: appends to one schema are serialized (one transaction at a time);
// each is one round trip to a function that does all of it (detail::krmx_append_function), with all its
// events inserted by one statement; the function's statement commits, and the lock is held until then.
//
// Subscriptions wake on `LISTEN/NOTIFY` (every append notifies its new head when it commits) and poll the
// head every `poll_interval` as a fallback. One listener connection per store, opened with the first
// subscription. A dropped connection (server restart, `pg_terminate_backend`) is reconnected with backoff;
// a subscription resumes reading after the last event it delivered, so nothing is lost or repeated.
// An append whose connection drops is retried on a new connection with the same event ids: if the lost
// commit had in fact happened, the retry finds the events and returns where they are.
//
// Durability: `PostgresDurability::synced` waits for the commit to be flushed (PostgreSQL's default);
// `group_commit` sets `synchronous_commit = off`: an acknowledged append survives a crash of this process
// (it is committed) but a crash of the database server may drop the last fraction of a second of commits,
// never corrupting anything. Payloads and metadata are stored as the exact JSON text (not `jsonb`), so a
// record reads back byte for byte; PostgreSQL's own page checksums and WAL guard the records.
//
// Threads: one per subscription (see SubscriptionHandlers) and the listener; connections are pooled.

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/subscription.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

enum class PostgresDurability {
    /// Each commit is flushed to disk before its append returns.
    synced,
    /// `synchronous_commit = off`: safe against a crash of the writer, not of the database server.
    group_commit,
};

struct PostgresEventStoreOptions {
    PostgresDurability durability = PostgresDurability::synced;
    /// How often subscriptions look for new events when no notification came (a lost one, or a writer that
    /// does not notify).
    std::chrono::milliseconds poll_interval{500};
    /// How long a lost connection is retried (with backoff) before an append, a read or a subscription
    /// gives up with PostgresConnectionLost.
    std::chrono::milliseconds reconnect_timeout{30'000};
};

class PostgresEventStore {
  public:
    /// Connects, and creates the schema's tables on first use (see PostgresOptions).
    explicit PostgresEventStore(PostgresOptions database = {}, PostgresEventStoreOptions options = {})
        : database_(std::move(database)), options_(options) {
        auto first = detail::open_krmx_schema(database_);
        conninfo_ = detail::postgres_conninfo(database_);
        const std::string s = detail::quoted_identifier(database_.schema);
        const std::string literal = "'" + database_.schema + "'";
        channel_ = "krmx_" + database_.schema;
        sql_.lock = "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(detail::krmx_advisory_class) +
                    ", hashtext(" + literal + "))";
        sql_.head = "SELECT coalesce(max(position), 0) FROM " + s + ".krmx_events";
        sql_.head_and_stream = "SELECT (SELECT coalesce(max(position), 0) FROM " + s +
                               ".krmx_events), s.id, s.revision FROM (SELECT 1) AS one LEFT JOIN " + s +
                               ".krmx_streams s ON s.name = $1";
        sql_.find_events =
            "SELECT e.event_id, e.position, s.name, e.revision, e.type, e.payload, e.dispatcher, e.metadata "
            "FROM " +
            s + ".krmx_events e JOIN " + s +
            ".krmx_streams s ON s.id = e.stream_id "
            "WHERE e.event_id = ANY($1::text[])";
        sql_.insert_stream =
            "INSERT INTO " + s + ".krmx_streams (name, revision) VALUES ($1, $2) RETURNING id";
        sql_.update_stream = "UPDATE " + s + ".krmx_streams SET revision = $2 WHERE id = $1";
        sql_.insert_events =
            "INSERT INTO " + s +
            ".krmx_events (position, stream_id, revision, event_id, type, payload, "
            "dispatcher, timestamp, metadata) SELECT $1::bigint + u.i - 1, $2::bigint, $3::bigint + u.i - 1, "
            "u.event_id, u.type, u.payload, u.dispatcher, u.ts, u.metadata FROM unnest($4::text[], "
            "$5::text[], "
            "$6::text[], $7::text[], $8::bigint[], $9::text[]) WITH ORDINALITY AS u(event_id, type, payload, "
            "dispatcher, ts, metadata, i)";
        sql_.columns =
            "SELECT position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, "
            "metadata FROM " +
            s + ".krmx_events ";
        sql_.append = "SELECT outcome, head, actual FROM " + s +
                      ".krmx_append($1, $2::int, $3::bigint, $4::text[], $5::text[], $6::text[], $7::text[], "
                      "$8::bigint[], $9::text[], $10::boolean, $11)";
        sql_.stream_revision = "SELECT revision FROM " + s + ".krmx_streams WHERE name = $1";
        sql_.stream_id = "SELECT id FROM " + s + ".krmx_streams WHERE name = $1";
        sql_.stream_name = "SELECT name FROM " + s + ".krmx_streams WHERE id = $1";
        sql_.streams_named = "SELECT id FROM " + s + ".krmx_streams WHERE name = ANY(";
        prepare(*first);
        const Position head = static_cast<Position>(first->exec(sql_.head).int64(0, 0));
        notifier_ = std::make_shared<detail::HeadNotifier>(head);
        pool_.give_back(std::make_unique<Connection>(std::move(first)));
    }

    PostgresEventStore(const PostgresEventStore&) = delete;
    PostgresEventStore& operator=(const PostgresEventStore&) = delete;

    /// Stops subscriptions and the listener, and closes every connection.
    ~PostgresEventStore() {
        closing_.store(true, std::memory_order_release);
        subscriptions_.stop_all();
        stop_listener();
        notifier_->close();
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected,
                        std::span<const NewEvent> events) {
        detail::check_append(stream, events);
        Request request;
        request.stream = std::string{stream};
        request.expected = expected;
        request.events.reserve(events.size());
        for (const NewEvent& event : events) request.events.push_back(pending(event));
        bool retry = false;
        return retrying(nullptr, [&](Connection& connection) {
            const bool repeat = std::exchange(retry, true);
            return append_once(connection, request, repeat);
        });
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected, const NewEvent& event) {
        return append(stream, expected, std::span<const NewEvent>{&event, 1});
    }

    [[nodiscard]] std::vector<RecordedEvent> read_stream(std::string_view stream, Revision from_revision = 0,
                                                         std::size_t max_count = read_unbounded) const {
        if (!detail::storable_name(stream)) return {};  // no event has it (see EventStore)
        const std::string name{stream};
        const std::string from = std::to_string(to_sql(from_revision));
        const std::string limit = std::to_string(to_sql(max_count));
        return retrying(nullptr, [&](Connection& connection) {
            std::vector<RecordedEvent> result;
            const auto id = connection.pg->exec(sql_.stream_id, {name});
            if (id.rows() == 0) return result;
            const std::string stream_id{id.text(0, 0)};
            const auto rows = connection.pg->exec(
                sql_.columns + "WHERE stream_id = $1 AND revision >= $2 ORDER BY revision LIMIT $3",
                std::array<detail::PgParam, 3>{stream_id, from, limit}, binary);
            result.reserve(static_cast<std::size_t>(rows.rows()));
            for (int row = 0; row < rows.rows(); ++row)
                decode_row(connection, detail::PgResultRow{rows, row}, result.emplace_back());
            return result;
        });
    }

    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after_position = 0,
                                                      std::size_t max_count = read_unbounded,
                                                      const EventFilter& filter = {}) const {
        return retrying(nullptr, [&](Connection& connection) {
            return read_range(connection, after_position, read_up_to(connection, filter), max_count, filter);
        });
    }

    /// Streams a bulk read (krmx::for_each_event, which calls it): `f(RecordedEvent&)` for every event after
    /// `after_position` that passes `filter`, at most `max_count`, to the end of the store; returns how
    /// many. Each window of positions is one binary COPY whose rows are decoded one at a time, as they come
    /// off the socket, into one reused record, while PostgreSQL produces the next ones on another core: no
    /// batch of records or result set is built, and memory stays bounded. A lost connection resumes after
    /// the last event delivered. `f` may use the store (it gets another connection); its exceptions reach
    /// the caller unchanged, and the connection of the interrupted COPY is closed.
    template <class F>
    std::size_t for_each_after(Position after_position, std::size_t max_count, const EventFilter& filter,
                               F&& f) const {
        static_assert(std::invocable<F&, RecordedEvent&>,
                      "for_each_after: f must take a krmx::RecordedEvent&");
        Position after = after_position;
        std::size_t remaining = max_count;
        std::exception_ptr failed;  // f's own exception: no retry may take it for a lost connection
        struct Stop {};
        try {
            retrying(nullptr, [&](Connection& connection) {
                RecordedEvent record;
                for (;;) {
                    const std::size_t before = remaining;
                    stream_range(connection, after, read_up_to(connection, filter), remaining, filter, record,
                                 [&](RecordedEvent& event) {
                                     try {
                                         f(event);
                                     } catch (...) {
                                         failed = std::current_exception();
                                         throw Stop{};
                                     }
                                 });
                    // A filtered read stops at the head it read first; look again until nothing is new.
                    if (filter.empty() || remaining == 0 || remaining == before) return;
                }
            });
        } catch (const Stop&) {
            std::rethrow_exception(failed);
        }
        return max_count - remaining;
    }

    [[nodiscard]] std::optional<Revision> stream_revision(std::string_view stream) const {
        if (!detail::storable_name(stream)) return std::nullopt;
        const std::string name{stream};
        return retrying(nullptr, [&](Connection& connection) -> std::optional<Revision> {
            const auto row = connection.pg->exec(sql_.stream_revision, {name});
            if (row.rows() == 0) return std::nullopt;
            return static_cast<Revision>(row.int64(0, 0));
        });
    }

    /// The last committed position in the database, whichever process wrote it (one query).
    [[nodiscard]] Position head_position() const {
        const Position head = retrying(nullptr, [&](Connection& connection) {
            return static_cast<Position>(connection.pg->exec(sql_.head).int64(0, 0));
        });
        notifier_->publish(head);
        return head;
    }

    /// Delivery happens on a thread owned by the subscription; cancel it through the returned handle.
    [[nodiscard]] Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                                         EventFilter filter = {}) {
        start_listener();
        // Catch-up and "from the end" mean what is committed now, in any process, not only what this store
        // has heard of: head_position() asks the database (and tells the notifier).
        const Position head = head_position();
        const SubscribeFrom start = from.is_end() ? SubscribeFrom::after(head) : from;
        auto stop = std::make_shared<std::atomic<bool>>(false);
        auto inner = std::make_shared<Subscription>(subscriptions_.start(
            notifier_, start, std::move(handlers), std::move(filter), subscription_batch,
            [this, stop](Position after, Position up_to, std::size_t max, const EventFilter& f) {
                return retrying(stop.get(), [&](Connection& connection) {
                    return read_range(connection, after, up_to, max, f);
                });
            }));
        return Subscription{[stop, inner] {
            stop->store(true, std::memory_order_release);
            inner->cancel();
        }};
    }

    /// What went wrong without an exception to say so (see StoreStatistics).
    [[nodiscard]] StoreStatistics statistics() const noexcept {
        return {.error_handler_failures = subscriptions_.error_handler_failures(),
                .connection_retries = connection_retries_.load(std::memory_order_relaxed),
                .listener_failures = listener_failures_.load(std::memory_order_relaxed)};
    }

    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    static constexpr std::size_t subscription_batch = 512;
    // Event rows come in binary (see detail::Results): every column is bigint or text.
    static constexpr auto binary = detail::Results::binary;
    // Batched reads of at least this many events read the next batch ahead (see read_range).
    static constexpr std::size_t read_ahead_width = 1024;
    // The events one window of a streamed read holds (see for_each_after).
    static constexpr std::size_t visit_window = 16384;

    struct Pending {
        std::string id;
        bool caller_id = false;
        std::string type;
        std::optional<std::string> payload;
        std::string dispatcher;
        std::int64_t timestamp = 0;
        std::optional<std::string> metadata;  // empty: the empty object
    };

    struct Request {
        std::string stream;
        ExpectedRevision expected = ExpectedRevision::any();
        std::vector<Pending> events;
    };

    struct Statements {
        std::string lock, head, head_and_stream, find_events, insert_stream, update_stream, insert_events,
            columns, append, stream_revision, stream_id, stream_name, streams_named;
    };

    // A pooled connection and the names of the streams it has met (streams are never renamed or removed).
    struct Connection {
        explicit Connection(std::unique_ptr<detail::PgConnection> connection) : pg(std::move(connection)) {}
        std::unique_ptr<detail::PgConnection> pg;
        std::unordered_map<std::int64_t, std::string> stream_names;
        // Whether a COPY is streaming on it (stream_range): no other statement can run meanwhile.
        bool copying = false;
        // The last stream met: rows of one stream tend to come together.
        std::int64_t last_stream_id = -1;
        const std::string* last_stream = nullptr;
    };

    // Marks a connection as copying for a scope.
    struct CopyingOn {
        explicit CopyingOn(Connection& connection) noexcept : connection(connection) {
            connection.copying = true;
        }
        CopyingOn(const CopyingOn&) = delete;
        CopyingOn& operator=(const CopyingOn&) = delete;
        ~CopyingOn() { connection.copying = false; }
        Connection& connection;
    };

    class Pool {
      public:
        struct Return {
            Pool* pool;
            void operator()(Connection* connection) const noexcept {
                pool->give_back(std::unique_ptr<Connection>{connection});
            }
        };
        using Lease = std::unique_ptr<Connection, Return>;

        template <class Open>
        Lease borrow(Open open) {
            {
                std::lock_guard lock{mutex_};
                if (!idle_.empty()) {
                    auto connection = std::move(idle_.back());
                    idle_.pop_back();
                    return Lease{connection.release(), Return{this}};
                }
            }
            return Lease{open().release(), Return{this}};
        }

        void give_back(std::unique_ptr<Connection> connection) noexcept {
            if (connection->pg->broken()) return;  // closed here; the next borrow connects anew
            try {
                std::lock_guard lock{mutex_};
                idle_.push_back(std::move(connection));
            } catch (...) {
                // Closed instead of kept: nothing is lost, the next borrow connects anew.
            }
        }

      private:
        std::mutex mutex_;
        std::vector<std::unique_ptr<Connection>> idle_;
    };

    static std::int64_t to_sql(std::uint64_t value) {
        return static_cast<std::int64_t>(
            std::min<std::uint64_t>(value, std::numeric_limits<std::int64_t>::max()));
    }

    static Pending pending(const NewEvent& event) {
        Pending result;
        result.caller_id = !event.id.empty();
        result.id = result.caller_id ? event.id : new_event_id();
        result.type = event.type;
        if (event.payload) {
            result.payload = detail::serialize_json(*event.payload, "payload", event.type);
        }
        result.dispatcher = event.dispatcher;
        result.timestamp = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               detail::stamped(event.timestamp).time_since_epoch())
                               .count();
        if (!event.metadata.is_null() && !event.metadata.empty()) {
            result.metadata = detail::serialize_json(event.metadata, "metadata", event.type);
        }
        return result;
    }

    void prepare(detail::PgConnection& connection) const {
        if (options_.durability == PostgresDurability::group_commit)
            connection.exec("SET synchronous_commit = off");
    }

    std::unique_ptr<Connection> open_connection() const {
        auto connection = std::make_unique<detail::PgConnection>(conninfo_);
        prepare(*connection);
        return std::make_unique<Connection>(std::move(connection));
    }

    // Runs `work` on a pooled connection; on a lost connection, retries on a new one with backoff until
    // `reconnect_timeout` passes, the store closes or `stop` is set.
    template <class Work>
    auto retrying(const std::atomic<bool>* stop, Work work) const
        -> std::invoke_result_t<Work&, Connection&> {
        const auto give_up = std::chrono::steady_clock::now() + options_.reconnect_timeout;
        auto backoff = std::chrono::milliseconds{20};
        for (;;) {
            try {
                auto lease = pool_.borrow([this] { return open_connection(); });
                return work(*lease);
            } catch (const PostgresConnectionLost&) {
                const auto cancelled = [&] {
                    return closing_.load(std::memory_order_acquire) ||
                           (stop != nullptr && stop->load(std::memory_order_acquire));
                };
                if (cancelled() || std::chrono::steady_clock::now() + backoff > give_up) throw;
                connection_retries_.fetch_add(1, std::memory_order_relaxed);
                // Sleep in short steps so that a cancelled subscription or a closing store is not held up.
                const auto wake = std::chrono::steady_clock::now() + backoff;
                while (std::chrono::steady_clock::now() < wake && !cancelled())
                    std::this_thread::sleep_for(std::chrono::milliseconds{5});
                if (cancelled()) throw;
                backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
            }
        }
    }

    // ---- appends ----

    // The events of a request as the six PostgreSQL arrays of krmx_events' columns.
    static std::array<std::string, 6> event_arrays(const Request& request) {
        detail::PgArray ids, types, payloads, dispatchers, timestamps, metadata;
        for (const Pending& event : request.events) {
            ids.add(event.id);
            types.add(event.type);
            payloads.add(event.payload ? std::optional<std::string_view>{*event.payload} : std::nullopt);
            dispatchers.add(event.dispatcher);
            timestamps.add(event.timestamp);
            metadata.add(event.metadata ? std::optional<std::string_view>{*event.metadata} : std::nullopt);
        }
        return {std::move(ids).done(),         std::move(types).done(),      std::move(payloads).done(),
                std::move(dispatchers).done(), std::move(timestamps).done(), std::move(metadata).done()};
    }

    // One round trip (detail::krmx_append_function): what append_in_steps does, inside PostgreSQL. When an
    // id of the request is stored already, append_in_steps decides whether it is a repeat.
    AppendResult append_once(Connection& connection, const Request& request, bool repeat_attempt) {
        const bool check_ids = repeat_attempt || std::any_of(request.events.begin(), request.events.end(),
                                                             [](const Pending& e) { return e.caller_id; });
        auto arrays = event_arrays(request);
        const std::string kind = std::to_string(static_cast<int>(request.expected.kind()));
        const std::string expected = std::to_string(to_sql(request.expected.revision()));
        const detail::PgParam bound[] = {
            request.stream, kind,      expected,  arrays[0], arrays[1],
            arrays[2],      arrays[3], arrays[4], arrays[5], check_ids ? "t" : "f",
            channel_};
        const auto row = connection.pg->exec(sql_.append, bound);
        const std::int64_t outcome = row.int64(0, 0);
        const auto head = static_cast<Position>(row.int64(0, 1));
        const std::optional<Revision> actual =
            row.is_null(0, 2) ? std::nullopt : std::optional{static_cast<Revision>(row.int64(0, 2))};
        if (outcome == 1) return append_in_steps(connection, request, repeat_attempt);
        if (outcome == 2) throw WrongExpectedRevision(request.stream, request.expected, actual);
        const Revision first_revision = actual ? *actual + 1 : 0;
        const Position last = head + request.events.size();
        notifier_->publish(last);
        return AppendResult{head + 1, last, first_revision, first_revision + request.events.size() - 1};
    }

    // The append as separate statements in one transaction; for requests whose ids may be stored already.
    AppendResult append_in_steps(Connection& connection, const Request& request, bool repeat_attempt) {
        detail::PgConnection& pg = *connection.pg;
        pg.exec(sql_.lock);
        try {
            const auto found = pg.exec(sql_.head_and_stream, {request.stream});
            Position head = static_cast<Position>(found.int64(0, 0));
            std::optional<std::int64_t> stream_id;
            std::optional<Revision> actual;
            if (!found.is_null(0, 1)) {
                stream_id = found.int64(0, 1);
                actual = static_cast<Revision>(found.int64(0, 2));
            }
            // After a lost connection the first attempt may have committed: look for our own ids too.
            if (auto repeat = find_repeat(pg, request, repeat_attempt)) {
                pg.rollback();
                // Our own generated ids found again: the lost commit did happen, and it was this append.
                const bool caller_ids = std::any_of(request.events.begin(), request.events.end(),
                                                    [](const Pending& e) { return e.caller_id; });
                if (!caller_ids) repeat->already_stored = false;
                return *repeat;
            }
            if (!request.expected.matches(actual)) {
                throw WrongExpectedRevision(request.stream, request.expected, actual);
            }
            const Revision first_revision = actual ? *actual + 1 : 0;
            const Revision last_revision = first_revision + request.events.size() - 1;
            const std::string last_revision_text = std::to_string(to_sql(last_revision));
            if (!stream_id) {
                stream_id = pg.exec(sql_.insert_stream, {request.stream, last_revision_text}).int64(0, 0);
            } else {
                const std::string id_text = std::to_string(*stream_id);
                pg.exec(sql_.update_stream, {id_text, last_revision_text});
            }
            auto arrays = event_arrays(request);
            const Position first_position = head + 1;
            head += request.events.size();
            const std::string params[] = {std::to_string(to_sql(first_position)), std::to_string(*stream_id),
                                          std::to_string(to_sql(first_revision))};
            const detail::PgParam bound[] = {params[0], params[1], params[2], arrays[0], arrays[1],
                                             arrays[2], arrays[3], arrays[4], arrays[5]};
            pg.exec(sql_.insert_events, bound);
            // The notification is delivered when (and only if) the transaction commits.
            const auto committed =
                pg.exec("SELECT pg_notify('" + channel_ + "', '" + std::to_string(head) + "'); COMMIT");
            if (committed.command_status() != "COMMIT") {
                throw StoreError("PostgreSQL rolled back an append to " + detail::quoted(request.stream));
            }
            notifier_->publish(head);
            return AppendResult{first_position, head, first_revision, last_revision};
        } catch (...) {
            pg.rollback();
            throw;
        }
    }

    // See MemoryEventStore::find_repeat: the same rules, over stored rows. With `all_ids`, ids the store
    // generated are looked up too (a retry after a lost connection).
    std::optional<AppendResult> find_repeat(detail::PgConnection& pg, const Request& request,
                                            bool all_ids) const {
        detail::PgArray wanted;
        bool any = false;
        for (const Pending& event : request.events) {
            if (event.caller_id || all_ids) {
                wanted.add(event.id);
                any = true;
            }
        }
        if (!any) return std::nullopt;
        const auto rows = pg.exec(sql_.find_events, {std::move(wanted).done()});
        std::unordered_map<std::string_view, int> stored;
        for (int row = 0; row < rows.rows(); ++row) stored.emplace(rows.text(row, 0), row);
        std::optional<AppendResult> found;
        for (std::size_t i = 0; i < request.events.size(); ++i) {
            const Pending& event = request.events[i];
            const auto at = (event.caller_id || all_ids) ? stored.find(event.id) : stored.end();
            if (at == stored.end()) {
                if (found) throw DuplicateEventId(request.events[0].id, found->first_position);
                continue;
            }
            const int row = at->second;
            const auto position = static_cast<Position>(rows.int64(row, 1));
            const auto revision = static_cast<Revision>(rows.int64(row, 3));
            const bool fits = rows.text(row, 2) == request.stream && rows.text(row, 4) == event.type &&
                              same_json(rows.optional_text(row, 5), event.payload) &&
                              rows.text(row, 6) == event.dispatcher &&
                              same_json(rows.optional_text(row, 7), event.metadata, true) &&
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
    static bool same_json(std::optional<std::string_view> stored, const std::optional<std::string>& text,
                          bool empty_object = false) {
        const auto as_json = [&](std::optional<std::string_view> value) -> std::optional<nlohmann::json> {
            if (!value) return empty_object ? std::optional{nlohmann::json::object()} : std::nullopt;
            return nlohmann::json::parse(value->begin(), value->end(), nullptr, false);
        };
        return as_json(stored) ==
               as_json(text ? std::optional<std::string_view>{*text} : std::optional<std::string_view>{});
    }

    // ---- reads ----
    //
    // Reads go in windows of positions, not `position > after ORDER BY position LIMIT n`: the planner cannot
    // know that positions are dense, and on a table without fresh statistics chose a bitmap scan of
    // everything after `after` plus a sort (300 ms for a batch of 4096 out of a million, not 3 ms). Without
    // a filter the next n events are exactly the positions up to after + n, and a window that comes back
    // short has reached the end. With one, windows grow until they hold enough matches or reach a head
    // below which nothing is missing (`up_to`).

    // A window of positions (after, to] and at most `limit` of its events that pass the filter.
    struct Window {
        Position after = 0;
        Position to = 0;
        std::size_t limit = 0;
    };

    // The windows of one read up to `up_to`, at most `chunk` events each.
    class WindowPlan {
      public:
        WindowPlan(Position up_to, std::size_t chunk, bool filtered)
            : up_to_(up_to),
              chunk_(std::max<std::size_t>(chunk, 1)),
              filtered_(filtered),
              width_(filtered ? 4096 : 0) {}

        // The window starting after `from` for a read that wants `remaining` more events (`from < up_to`).
        [[nodiscard]] Window at(Position from, std::size_t remaining) {
            const std::size_t wanted = std::min(remaining, chunk_);
            width_ = filtered_ ? std::max<Position>(width_, wanted) : wanted;
            const Position to = width_ < up_to_ - from ? from + width_ : up_to_;
            return Window{from, to, filtered_ ? wanted : static_cast<std::size_t>(to - from)};
        }

        // Where a read stands after `window` gave `count` events, the last at `last`: the last when the
        // limit cut the window short (or without a filter), otherwise its end (nothing else in it matched).
        [[nodiscard]] Position covered(const Window& window, std::size_t count, Position last) const {
            if (count == window.limit || !filtered_) return count == 0 ? window.after : last;
            return window.to;
        }

        // Whether another window follows; a filtered window that was not full makes the next one wider.
        [[nodiscard]] bool more(const Window& window, std::size_t count, Position covered,
                                std::size_t remaining) {
            if (filtered_ && count < window.limit) width_ = std::min<Position>(width_ * 2, Position{1} << 20);
            return remaining > 0 && covered < up_to_ && (filtered_ || count == window.limit);
        }

      private:
        Position up_to_;
        std::size_t chunk_;
        bool filtered_;
        Position width_;
    };

    // A window's WHERE clause and what follows; `value(text)` puts a value into the SQL text: a parameter
    // ("$n") for a prepared statement, a literal for a COPY.
    template <class Value>
    std::string window_clause(const Window& window, const EventFilter& filter, Value&& value) const {
        std::string sql = "WHERE position > " + value(std::to_string(to_sql(window.after))) +
                          " AND position <= " + value(std::to_string(to_sql(window.to)));
        // A name no event can have (see EventStore) matches nothing, and PostgreSQL would refuse one that is
        // not UTF-8 (libpq would cut one with a NUL short): it is left out, and a list of nothing else
        // matches nothing.
        const auto names_of = [](const std::vector<std::string>& names) -> std::optional<std::string> {
            detail::PgArray array;
            bool any = false;
            for (const auto& name : names) {
                if (!detail::storable_name(name)) continue;
                array.add(name);
                any = true;
            }
            return any ? std::optional{std::move(array).done()} : std::nullopt;
        };
        if (!filter.streams.empty()) {
            const auto names = names_of(filter.streams);
            sql += names ? " AND stream_id IN (" + sql_.streams_named + value(*names) + "::text[]))"
                         : " AND false";
        }
        if (!filter.types.empty()) {
            const auto types = names_of(filter.types);
            sql += types ? " AND type = ANY(" + value(*types) + "::text[])" : " AND false";
        }
        return sql + " ORDER BY position LIMIT " + value(std::to_string(to_sql(window.limit)));
    }

    // A window as a prepared statement. Its parameters are texts; bound() views them.
    struct WindowQuery {
        std::string sql;
        std::vector<std::string> texts;
        [[nodiscard]] std::vector<detail::PgParam> bound() const { return {texts.begin(), texts.end()}; }
    };

    WindowQuery window_query(const Window& window, const EventFilter& filter) const {
        WindowQuery query;
        query.sql = sql_.columns + window_clause(window, filter, [&](std::string text) {
                        query.texts.push_back(std::move(text));
                        return "$" + std::to_string(query.texts.size());
                    });
        return query;
    }

    // Reads the events after `after` up to `up_to` that pass `filter`, at most `max_count`, into a vector.
    //
    // Read-ahead: the next window is sent before this one's rows are decoded, so that PostgreSQL produces it
    // on the other core meanwhile, and its rows are pulled off the socket as they arrive. A full and wide
    // unfiltered window also sends the next one of the same width when this read wants no more: a reader
    // reading in batches asks for it next. A window sent by an earlier read is used only when full: a short
    // one may be older than this read (an append that returned before it would be missing), whereas full
    // windows of committed positions never change.
    std::vector<RecordedEvent> read_range(Connection& connection, Position after, Position up_to,
                                          std::size_t max_count, const EventFilter& filter) const {
        std::vector<RecordedEvent> result;
        if (max_count == 0 || after >= up_to) return result;
        std::size_t remaining = max_count;
        WindowPlan plan{up_to, max_count, !filter.empty()};
        Window current = plan.at(after, remaining);
        bool sent_here = false;
        for (;;) {
            const WindowQuery query = window_query(current, filter);
            const auto bound = query.bound();
            std::optional<detail::PgResult> rows = connection.pg->take_sent(query.sql, bound);
            if (rows && !sent_here && static_cast<std::size_t>(rows->rows()) != current.limit) rows.reset();
            if (!rows) rows = connection.pg->exec(query.sql, bound, binary);
            const auto count = static_cast<std::size_t>(rows->rows());
            const Position last =
                count == 0 ? 0 : static_cast<Position>(rows->int64(static_cast<int>(count) - 1, 0));
            const Position covered = plan.covered(current, count, last);
            remaining -= count;
            std::optional<Window> next;
            if (plan.more(current, count, covered, remaining)) {
                next = plan.at(covered, remaining);
                const WindowQuery next_query = window_query(*next, filter);
                connection.pg->send(next_query.sql, next_query.bound(), binary);
                sent_here = true;
            } else if (filter.empty() && count == current.limit && count >= read_ahead_width &&
                       current.to <=
                           static_cast<Position>(std::numeric_limits<std::int64_t>::max()) - count) {
                const WindowQuery ahead = window_query(Window{current.to, current.to + count, count}, filter);
                connection.pg->send(ahead.sql, ahead.bound(), binary);
            }
            result.reserve(result.size() + count);
            for (std::size_t row = 0; row < count; ++row) {
                if (row % 512 == 511) connection.pg->pull();
                decode_row(connection, detail::PgResultRow{*rows, static_cast<int>(row)},
                           result.emplace_back());
            }
            if (!next) return result;
            current = *next;
        }
    }

    // Streams the events after `after` up to `up_to` that pass `filter`, at most `remaining`, to
    // `visit(RecordedEvent&)`: each window is one `COPY ... TO STDOUT (FORMAT binary)`, whose rows are
    // decoded one at a time into `record` as they come off the socket. No result set is built (for a
    // PGresult, libpq allocates and frees the whole window, and glibc hands that memory back to the system
    // and faults it in again, window after window), and PostgreSQL produces the rows while they are
    // applied. `after` and `remaining` follow what was delivered, so a retry resumes exactly there.
    template <class Visit>
    void stream_range(Connection& connection, Position& after, Position up_to, std::size_t& remaining,
                      const EventFilter& filter, RecordedEvent& record, Visit&& visit) const {
        if (remaining == 0 || after >= up_to) return;
        WindowPlan plan{up_to, visit_window, !filter.empty()};
        for (;;) {
            const Window window = plan.at(after, remaining);
            const std::string sql =
                "COPY (" + sql_.columns +
                window_clause(window, filter,
                              [&](const std::string& text) { return connection.pg->literal(text); }) +
                ") TO STDOUT (FORMAT binary)";
            std::size_t count = 0;
            detail::CopyTuple tuple;
            const CopyingOn copying{connection};
            connection.pg->copy_out(sql, [&](std::string_view message) {
                if (!tuple.read(message)) return;
                if (tuple.fields() != 9)
                    throw CorruptRecord("a row that PostgreSQL sent has the wrong columns");
                decode_row(connection, tuple, record);
                if (record.position <= after || record.position > window.to || count == window.limit)
                    throw CorruptRecord(
                        "PostgreSQL sent an event out of order or outside the window asked for");
                after = record.position;
                ++count;
                --remaining;
                visit(record);
            });
            const Position covered = plan.covered(window, count, after);
            after = std::max(after, covered);
            if (!plan.more(window, count, covered, remaining)) return;
        }
    }

    // Where a read may go: a head below which nothing is missing, or the largest position when `filter` is
    // empty (an unfiltered read stops at its first short window by itself).
    Position read_up_to(Connection& connection, const EventFilter& filter) const {
        return filter.empty() ? static_cast<Position>(std::numeric_limits<std::int64_t>::max())
                              : static_cast<Position>(connection.pg->exec(sql_.head).int64(0, 0));
    }

    const std::string& stream_name(Connection& connection, std::int64_t id) const {
        if (connection.last_stream != nullptr && connection.last_stream_id == id)
            return *connection.last_stream;
        auto known = connection.stream_names.find(id);
        if (known == connection.stream_names.end()) {
            const auto lookup = [&](Connection& on) {
                const std::string id_text = std::to_string(id);
                const auto row = on.pg->exec(sql_.stream_name, {id_text});
                if (row.rows() == 0) {
                    throw CorruptRecord("an event refers to stream id " + std::to_string(id) +
                                        ", which does not exist");
                }
                return std::string{row.text(0, 0)};
            };
            // In the middle of a COPY the connection cannot run another statement: ask on another one.
            std::string name = connection.copying ? retrying(nullptr, lookup) : lookup(connection);
            known = connection.stream_names.emplace(id, std::move(name)).first;
        }
        connection.last_stream_id = id;
        connection.last_stream = &known->second;
        return known->second;
    }

    // One row into `event`, every member assigned (the event may be a reused one that was moved from).
    // Columns: position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata.
    template <class Row>
    void decode_row(Connection& connection, const Row& row, RecordedEvent& event) const {
        event.position = static_cast<Position>(row.int64(0));
        event.stream = stream_name(connection, row.int64(1));
        event.revision = static_cast<Revision>(row.int64(2));
        event.id = row.text(3);
        event.type = row.text(4);
        event.dispatcher = row.text(6);
        event.timestamp = std::chrono::system_clock::time_point{
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::nanoseconds{row.int64(7)})};
        const auto payload = row.optional_text(5);
        const auto metadata = row.optional_text(8);
        try {
            if (payload) {
                event.payload = nlohmann::json::parse(payload->begin(), payload->end());
            } else {
                event.payload.reset();
            }
            if (metadata) {
                event.metadata = nlohmann::json::parse(metadata->begin(), metadata->end());
            } else if (!event.metadata.is_object() || !event.metadata.empty()) {
                event.metadata = nlohmann::json::object();
            }
        } catch (const nlohmann::json::exception& e) {
            throw CorruptRecord("the event at position " + std::to_string(event.position) +
                                " holds JSON that does not parse: " + e.what());
        }
    }

    // ---- the listener ----

    void start_listener() {
        std::lock_guard lock{listener_mutex_};
        if (listener_.joinable()) return;
        if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
            throw StoreError("cannot create a pipe for the listener");
        listener_ = std::thread([this] { listen_loop(); });
    }

    void stop_listener() noexcept {
        std::lock_guard lock{listener_mutex_};
        if (!listener_.joinable()) return;
        const char byte = 1;
        while (::write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
        }
        listener_.join();
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

    // Waits until `fd` is readable, the wake pipe is written or `timeout` passes; false when woken to stop.
    bool wait_readable(int fd, std::chrono::milliseconds timeout, bool& readable) const {
        pollfd fds[2] = {{wake_[0], POLLIN, 0}, {fd, POLLIN, 0}};
        const int ready = ::poll(fds, fd >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
        if (closing_.load(std::memory_order_acquire) || (ready > 0 && (fds[0].revents & POLLIN) != 0))
            return false;
        readable = ready > 0 && fd >= 0 && fds[1].revents != 0;
        return true;
    }

    void listen_loop() {
        std::unique_ptr<detail::PgConnection> connection;
        auto backoff = std::chrono::milliseconds{20};
        for (;;) {
            bool readable = false;
            try {
                if (!connection) {
                    connection = std::make_unique<detail::PgConnection>(conninfo_);
                    connection->exec("LISTEN " + channel_);
                    // Whatever was committed while nobody listened.
                    notifier_->publish(static_cast<Position>(connection->exec(sql_.head).int64(0, 0)));
                    backoff = std::chrono::milliseconds{20};
                }
                if (!wait_readable(PQsocket(connection->handle()), options_.poll_interval, readable)) return;
                if (!readable) {
                    // The polling fallback.
                    notifier_->publish(static_cast<Position>(connection->exec(sql_.head).int64(0, 0)));
                    continue;
                }
                if (PQconsumeInput(connection->handle()) == 0) {
                    throw PostgresConnectionLost("the PostgreSQL listener connection was lost");
                }
                while (PGnotify* notification = PQnotifies(connection->handle())) {
                    const std::string_view text{notification->extra};
                    Position head = 0;
                    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), head);
                    PQfreemem(notification);
                    // Another payload on the channel is not ours to read; the poll reads the head anyway.
                    if (error == std::errc{}) notifier_->publish(head);
                }
                if (connection->broken())
                    throw PostgresConnectionLost("the PostgreSQL listener connection was lost");
            } catch (...) {
                // Reconnect with backoff; subscribers meanwhile wait (they resume after their last event).
                listener_failures_.fetch_add(1, std::memory_order_relaxed);
                connection.reset();
                if (!wait_readable(-1, backoff, readable)) return;
                backoff = std::min(backoff * 2, std::chrono::milliseconds{2000});
            }
        }
    }

    PostgresOptions database_;
    PostgresEventStoreOptions options_;
    std::string conninfo_;
    std::string channel_;
    Statements sql_;
    mutable Pool pool_;
    std::shared_ptr<detail::HeadNotifier> notifier_;
    std::atomic<bool> closing_{false};
    mutable std::atomic<std::uint64_t> connection_retries_{0};
    std::atomic<std::uint64_t> listener_failures_{0};

    std::mutex listener_mutex_;
    std::thread listener_;
    int wake_[2] = {-1, -1};

    detail::SubscriptionRegistry subscriptions_;
};

static_assert(EventStore<PostgresEventStore>);

}  // namespace krmx

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
        const std::string s = detail::quoted(database_.schema);
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
        sql_.window = sql_.columns + "WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3";
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
        check_text(stream, "the stream name");
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
        if (stream.find('\0') != std::string_view::npos) return {};
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
            decode_rows(connection, rows, result);
            return result;
        });
    }

    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after_position = 0,
                                                      std::size_t max_count = read_unbounded,
                                                      const EventFilter& filter = {}) const {
        return retrying(nullptr, [&](Connection& connection) {
            // A filtered read goes in windows up to a head (read_range); a subscription knows its head,
            // a plain read asks for it.
            const Position up_to = filter.empty()
                                       ? static_cast<Position>(std::numeric_limits<std::int64_t>::max())
                                       : static_cast<Position>(connection.pg->exec(sql_.head).int64(0, 0));
            return read_range(connection, after_position, up_to, max_count, filter);
        });
    }

    [[nodiscard]] std::optional<Revision> stream_revision(std::string_view stream) const {
        if (stream.find('\0') != std::string_view::npos) return std::nullopt;
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

    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    static constexpr std::size_t subscription_batch = 512;
    // Event rows come in binary (see detail::Results): every column is bigint or text.
    static constexpr auto binary = detail::Results::binary;
    // Reads of at least this many events read the next window ahead (see read_ahead).
    static constexpr Position read_ahead_width = 1024;

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
            columns, window, append, stream_revision, stream_id, stream_name, streams_named;
    };

    // A pooled connection and the names of the streams it has met (streams are never renamed or removed).
    struct Connection {
        explicit Connection(std::unique_ptr<detail::PgConnection> connection) : pg(std::move(connection)) {}
        std::unique_ptr<detail::PgConnection> pg;
        std::unordered_map<std::int64_t, std::string> stream_names;
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
                // Closed instead of kept.
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

    // PostgreSQL text cannot hold NUL characters; refuse rather than let libpq cut the text short.
    static void check_text(std::string_view text, const std::string& what) {
        if (text.find('\0') != std::string_view::npos) {
            throw InvalidAppend(what + " contains a NUL character, which PostgreSQL cannot store");
        }
    }

    static Pending pending(const NewEvent& event) {
        Pending result;
        result.caller_id = !event.id.empty();
        result.id = result.caller_id ? event.id : new_event_id();
        check_text(result.id, "the event id '" + result.id + "'");
        result.type = event.type;
        check_text(result.type, "the type of an event");
        if (event.payload) {
            result.payload =
                detail::serialize_json(*event.payload, "payload of a '" + event.type + "' event");
        }
        result.dispatcher = event.dispatcher;
        check_text(result.dispatcher, "the dispatcher of a '" + event.type + "' event");
        result.timestamp = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               detail::stamped(event.timestamp).time_since_epoch())
                               .count();
        if (!event.metadata.is_null() && !event.metadata.empty()) {
            result.metadata =
                detail::serialize_json(event.metadata, "metadata of a '" + event.type + "' event");
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
        const detail::PgParam bound[] = {request.stream, kind,      expected,  arrays[0],
                                         arrays[1],      arrays[2], arrays[3], arrays[4],
                                         arrays[5],      check_ids ? "t" : "f", channel_};
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
                throw StoreError("PostgreSQL rolled back an append to '" + request.stream + "'");
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

    // Reads in windows of positions. The planner cannot know that positions are dense: on a table without
    // fresh statistics it estimated a few thousand rows for `position > after` and chose a bitmap scan of
    // everything after `after` plus a sort (300 ms for a batch of 4096 out of a million, not 3 ms). A window
    // of known width makes every plan cheap. Without a filter, the next `max_count` events are exactly the
    // positions up to `after + max_count`: one window. With one, windows grow until enough events matched or
    // `up_to` (a head: nothing is missing below it) is reached.
    std::vector<RecordedEvent> read_range(Connection& connection, Position after, Position up_to,
                                          std::size_t max_count, const EventFilter& filter) const {
        std::vector<RecordedEvent> result;
        const bool filtered = !filter.empty();
        Position width = filtered ? 4096 : 0;
        while (after < up_to && result.size() < max_count) {
            const std::size_t wanted = max_count - result.size();
            width = filtered ? std::max<Position>(width, wanted) : wanted;
            const Position to = width < up_to - after ? after + width : up_to;
            if (!filtered) {
                read_ahead(connection, after, to, result);
                break;
            }
            read_window(connection, after, to, wanted, filter, result);
            after = to;
            width = std::min<Position>(width * 2, Position{1} << 20);
        }
        return result;
    }

    // An unfiltered window (after, to]: exactly the events at those positions. A bulk reader (a replay, a
    // catch-up) asks for the next window next, so when this one is full and wide, the next one of the same
    // width is sent before this one is decoded: the server produces it meanwhile, on another core. Only a
    // full window read ahead is used: its events are committed and never change, whereas a short one may
    // be older than the call (an append that returned before it would be missing).
    void read_ahead(Connection& connection, Position after, Position to, std::vector<RecordedEvent>& into) const {
        const auto window = [&](Position from, Position until) {
            return std::array<std::string, 3>{std::to_string(to_sql(from)), std::to_string(to_sql(until)),
                                              std::to_string(to_sql(until - from))};
        };
        const auto params = window(after, to);
        const std::array<detail::PgParam, 3> bound{params[0], params[1], params[2]};
        const Position width = to - after;
        std::optional<detail::PgResult> rows = connection.pg->take_sent(sql_.window, bound);
        if (!rows || static_cast<Position>(rows->rows()) != width) {
            rows = connection.pg->exec(sql_.window, bound, binary);
        }
        if (width >= read_ahead_width && static_cast<Position>(rows->rows()) == width &&
            to <= static_cast<Position>(std::numeric_limits<std::int64_t>::max()) - width) {
            const auto next = window(to, to + width);
            const std::array<detail::PgParam, 3> next_bound{next[0], next[1], next[2]};
            connection.pg->send(sql_.window, next_bound, binary);
        }
        decode_rows(connection, *rows, into);
    }

    void read_window(Connection& connection, Position after, Position up_to, std::size_t max_count,
                     const EventFilter& filter, std::vector<RecordedEvent>& into) const {
        std::string sql = sql_.columns + "WHERE position > $1 AND position <= $2";
        std::vector<std::string> params{std::to_string(to_sql(after)), std::to_string(to_sql(up_to)),
                                        std::to_string(to_sql(max_count))};
        if (!filter.streams.empty()) {
            detail::PgArray names;
            for (const auto& name : filter.streams) names.add(name);
            params.push_back(std::move(names).done());
            sql += " AND stream_id IN (" + sql_.streams_named + "$" + std::to_string(params.size()) +
                   "::text[]))";
        }
        if (!filter.types.empty()) {
            detail::PgArray types;
            for (const auto& type : filter.types) types.add(type);
            params.push_back(std::move(types).done());
            sql += " AND type = ANY($" + std::to_string(params.size()) + "::text[])";
        }
        sql += " ORDER BY position LIMIT $3";
        std::vector<detail::PgParam> bound(params.begin(), params.end());
        decode_rows(connection, connection.pg->exec(sql, bound, binary), into);
    }

    const std::string& stream_name(Connection& connection, std::int64_t id) const {
        const auto known = connection.stream_names.find(id);
        if (known != connection.stream_names.end()) return known->second;
        const std::string id_text = std::to_string(id);
        const auto row = connection.pg->exec(sql_.stream_name, {id_text});
        if (row.rows() == 0) {
            throw CorruptRecord("an event refers to stream id " + std::to_string(id) +
                                ", which does not exist");
        }
        return connection.stream_names.emplace(id, std::string{row.text(0, 0)}).first->second;
    }

    // Columns: position, stream_id, revision, event_id, type, payload, dispatcher, timestamp, metadata.
    void decode_rows(Connection& connection, const detail::PgResult& rows,
                     std::vector<RecordedEvent>& into) const {
        into.reserve(into.size() + static_cast<std::size_t>(rows.rows()));
        std::int64_t last_stream_id = -1;
        const std::string* last_stream = nullptr;
        for (int row = 0; row < rows.rows(); ++row) {
            // Keep a read-ahead's rows flowing (see read_ahead).
            if (row % 512 == 511) connection.pg->pull();
            const std::int64_t stream_id = rows.int64(row, 1);
            if (last_stream == nullptr || stream_id != last_stream_id) {
                last_stream = &stream_name(connection, stream_id);
                last_stream_id = stream_id;
            }
            RecordedEvent& event = into.emplace_back();
            event.position = static_cast<Position>(rows.int64(row, 0));
            event.stream = *last_stream;
            event.revision = static_cast<Revision>(rows.int64(row, 2));
            event.id = rows.text(row, 3);
            event.type = rows.text(row, 4);
            const auto payload = rows.optional_text(row, 5);
            event.dispatcher = rows.text(row, 6);
            event.timestamp = std::chrono::system_clock::time_point{
                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                    std::chrono::nanoseconds{rows.int64(row, 7)})};
            const auto metadata = rows.optional_text(row, 8);
            try {
                if (payload) event.payload = nlohmann::json::parse(payload->begin(), payload->end());
                if (metadata) event.metadata = nlohmann::json::parse(metadata->begin(), metadata->end());
            } catch (const nlohmann::json::exception& e) {
                into.pop_back();
                throw CorruptRecord("the event at position " + std::to_string(event.position) +
                                    " holds JSON that does not parse: " + e.what());
            }
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
                    if (error == std::errc{}) notifier_->publish(head);
                }
                if (connection->broken())
                    throw PostgresConnectionLost("the PostgreSQL listener connection was lost");
            } catch (...) {
                // Reconnect with backoff; subscribers meanwhile wait (they resume after their last event).
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

    std::mutex listener_mutex_;
    std::thread listener_;
    int wake_[2] = {-1, -1};

    detail::SubscriptionRegistry subscriptions_;
};

static_assert(EventStore<PostgresEventStore>);

}  // namespace krmx

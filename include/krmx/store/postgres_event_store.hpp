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
//
// The parts: detail/postgres_pool.hpp (connections, retries), postgres_append.hpp, postgres_reads.hpp (with
// postgres_windows.hpp), postgres_listen.hpp; the options and errors are in postgres_options.hpp.

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/subscription.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/postgres_append.hpp"
#include "krmx/store/detail/postgres_listen.hpp"
#include "krmx/store/detail/postgres_pool.hpp"
#include "krmx/store/detail/postgres_reads.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/postgres_options.hpp"

namespace krmx {

class PostgresEventStore {
  public:
    /// Connects, and creates the schema's tables on first use (see PostgresOptions).
    explicit PostgresEventStore(PostgresOptions database = {}, PostgresEventStoreOptions options = {})
        : database_(std::move(database)),
          options_(options),
          pool_(detail::postgres_conninfo(database_), options_, closing_),
          reads_(database_.schema, pool_),
          appender_(database_.schema, notifier_),
          listener_(detail::postgres_conninfo(database_), database_.schema, notifier_, options_.poll_interval,
                    closing_) {
        auto first = std::make_unique<detail::PgPooledConnection>(detail::open_krmx_schema(database_));
        pool_.prepare(*first->pg);
        notifier_->publish(reads_.head(*first));
        pool_.give_back(std::move(first));
    }

    PostgresEventStore(const PostgresEventStore&) = delete;
    PostgresEventStore& operator=(const PostgresEventStore&) = delete;

    /// Stops subscriptions and the listener, and closes every connection.
    ~PostgresEventStore() {
        closing_.store(true, std::memory_order_release);
        subscriptions_.stop_all();
        listener_.stop();
        notifier_->close();
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected,
                        std::span<const NewEvent> events) {
        detail::check_append(stream, events);
        const detail::PgAppendRequest request{stream, expected, events};
        bool retry = false;
        return pool_.retrying(nullptr, [&](detail::PgPooledConnection& connection) {
            const bool repeat = std::exchange(retry, true);
            return appender_.append(connection, request, repeat);
        });
    }

    AppendResult append(std::string_view stream, ExpectedRevision expected, const NewEvent& event) {
        return append(stream, expected, std::span<const NewEvent>{&event, 1});
    }

    [[nodiscard]] std::vector<RecordedEvent> read_stream(std::string_view stream, Revision from_revision = 0,
                                                         std::size_t max_count = read_unbounded) const {
        if (!detail::storable_name(stream)) return {};  // no event has it (see EventStore)
        const std::string name{stream};
        return pool_.retrying(nullptr, [&](detail::PgPooledConnection& connection) {
            return reads_.read_stream(connection, name, from_revision, max_count);
        });
    }

    [[nodiscard]] std::vector<RecordedEvent> read_all(Position after_position = 0,
                                                      std::size_t max_count = read_unbounded,
                                                      const EventFilter& filter = {}) const {
        return pool_.retrying(nullptr, [&](detail::PgPooledConnection& connection) {
            return reads_.read_range(connection, after_position, reads_.read_up_to(connection, filter),
                                     max_count, filter);
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
            pool_.retrying(nullptr, [&](detail::PgPooledConnection& connection) {
                RecordedEvent record;
                for (;;) {
                    const std::size_t before = remaining;
                    reads_.stream_range(connection, after, reads_.read_up_to(connection, filter), remaining,
                                        filter, record, [&](RecordedEvent& event) {
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
        return pool_.retrying(nullptr, [&](detail::PgPooledConnection& connection) {
            return reads_.stream_revision(connection, name);
        });
    }

    /// The last committed position in the database, whichever process wrote it (one query).
    [[nodiscard]] Position head_position() const {
        const Position head = pool_.retrying(
            nullptr, [&](detail::PgPooledConnection& connection) { return reads_.head(connection); });
        notifier_->publish(head);
        return head;
    }

    /// Delivery happens on a thread owned by the subscription; cancel it through the returned handle.
    [[nodiscard]] Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                                         EventFilter filter = {}) {
        listener_.start();
        // Catch-up and "from the end" mean what is committed now, in any process, not only what this store
        // has heard of: head_position() asks the database (and tells the notifier).
        const Position head = head_position();
        const SubscribeFrom start = from.is_end() ? SubscribeFrom::after(head) : from;
        auto stop = std::make_shared<std::atomic<bool>>(false);
        auto inner = std::make_shared<Subscription>(subscriptions_.start(
            notifier_, start, std::move(handlers), std::move(filter), subscription_batch,
            [this, stop](Position after, Position up_to, std::size_t max, const EventFilter& f) {
                return pool_.retrying(stop.get(), [&](detail::PgPooledConnection& connection) {
                    return reads_.read_range(connection, after, up_to, max, f);
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
                .connection_retries = pool_.retries(),
                .listener_failures = listener_.failures()};
    }

    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    static constexpr std::size_t subscription_batch = 512;

    PostgresOptions database_;
    PostgresEventStoreOptions options_;
    std::atomic<bool> closing_{false};
    std::shared_ptr<detail::HeadNotifier> notifier_ = std::make_shared<detail::HeadNotifier>();
    mutable detail::PgPool pool_;
    detail::PgReads reads_;
    detail::PgAppender appender_;
    detail::PgListener listener_;
    detail::SubscriptionRegistry subscriptions_;
};

static_assert(EventStore<PostgresEventStore>);

}  // namespace krmx

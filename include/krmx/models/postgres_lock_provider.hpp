#pragma once
// Locks across processes and machines, held in a PostgreSQL server. Link `krmx::postgres`.
//
// A lock is a session-level advisory lock (`pg_advisory_lock`) taken on a connection that belongs to that
// lock while it is held. The server ties the lock to the session, which is how a holder that dies frees it:
// when its process exits or is killed, or its machine or network goes away, the server ends the session and
// the next waiter gets the lock at once (after TCP keepalive notices, for a machine that vanished). There
// are no leases and no clocks to agree on. The other side of that coin: a holder whose connection breaks
// (server restart, `pg_terminate_backend`) has lost its lock without being told. A write model stays safe
// regardless, because its append checks the expected revision; the lock only keeps writers from wasting
// work. Waiting happens in the server (`pg_advisory_lock` blocks), so waiters take the lock in turn.
//
// Each lock name gets a number in the schema's `krmx_locks` table the first time it is locked (locking it
// again reads the number and uses up none), and its advisory lock is the two-key (the schema's lock class,
// the number as an int4). The lock class is the hash of the schema, and never krmx_advisory_class, the first
// key of the store's own advisory locks: lock names collide neither with each other within a schema nor with
// the store. Numbers 1 to 2^32 are each their own int4 (2^31 and up wrap around to negative ones), so a
// schema holds 2^32 lock names; a name numbered past that is refused (every new name, and every first use
// that loses a race to register the same new name, uses up a number).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/models/lock_provider.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

class PostgresLockProvider {
  public:
    /// Connects, and creates the schema's krmx tables on first use (see PostgresOptions).
    explicit PostgresLockProvider(PostgresOptions database = {}) : database_(std::move(database)) {
        auto first = detail::open_krmx_schema(database_);
        const std::string s = detail::quoted_identifier(database_.schema);
        // The insert runs only for a new name: ON CONFLICT alone would use up a number on every lock.
        id_sql_ =
            "WITH known AS (SELECT id FROM " + s +
            ".krmx_locks WHERE name = $1::text), added AS (INSERT INTO " + s +
            ".krmx_locks (name) SELECT $1::text WHERE NOT EXISTS (SELECT FROM known) ON CONFLICT (name) "
            "DO NOTHING RETURNING id) SELECT id FROM known UNION ALL SELECT id FROM added";
        const std::string class_text = "krmx-lock:" + database_.schema;
        auto lock_class =
            static_cast<std::int32_t>(first->exec("SELECT hashtext($1::text)", {class_text}).int64(0, 0));
        if (lock_class == detail::krmx_advisory_class) ++lock_class;
        const std::string keys = "((" + std::to_string(lock_class) + ")::int4, $1::int4)";
        lock_sql_ = "SELECT pg_advisory_lock" + keys;
        try_lock_sql_ = "SELECT pg_try_advisory_lock" + keys;
        unlock_sql_ = "SELECT pg_advisory_unlock" + keys;
        give_back(std::move(first));
    }
    PostgresLockProvider(const PostgresLockProvider&) = delete;
    PostgresLockProvider& operator=(const PostgresLockProvider&) = delete;

    /// Waits (in the server) until `name` is free, then holds it until the Lock is released or destroyed.
    /// The provider must outlive its locks.
    [[nodiscard]] Lock acquire(std::string_view name) {
        detail::check_lock_name(name);
        std::shared_ptr<detail::PgConnection> connection = borrow();
        std::string number = lock_number(*connection, name);
        connection->exec(lock_sql_, {number});
        return holding(std::move(connection), std::move(number));
    }

    /// Holds `name` if it is free right now; empty (at once) when someone holds it.
    [[nodiscard]] std::optional<Lock> try_acquire(std::string_view name) {
        detail::check_lock_name(name);
        std::shared_ptr<detail::PgConnection> connection = borrow();
        std::string number = lock_number(*connection, name);
        if (connection->exec(try_lock_sql_, {number}).text(0, 0) != "t") {
            give_back(connection);
            return std::nullopt;
        }
        return holding(std::move(connection), std::move(number));
    }

    /// Releases that did not unlock: the connection was lost (and the server had freed the lock with its
    /// session, maybe while it was held) or the unlock failed.
    [[nodiscard]] std::uint64_t failed_releases() const noexcept { return failed_releases_.load(); }
    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    // The number of lock `name` as the advisory lock's int4 key (text, a statement parameter); made on first
    // use. A concurrent first use may make the insert see nothing (it waited for the other insert, and the
    // statement's snapshot predates it): ask again.
    std::string lock_number(detail::PgConnection& connection, std::string_view name) {
        for (int attempt = 0;; ++attempt) {
            const auto row = connection.exec(id_sql_, {name});
            if (row.rows() > 0) {
                const std::int64_t id = row.int64(0, 0);
                if (id < 1 || id > max_lock_number) {
                    throw StoreError("the lock names of the PostgreSQL schema '" + database_.schema +
                                     "' have used up their 2^32 lock numbers: a new name cannot be locked");
                }
                // 1 .. 2^32 onto the 2^32 int4 values, one each (C++20 conversions wrap around).
                return std::to_string(static_cast<std::int32_t>(static_cast<std::uint32_t>(id)));
            }
            if (attempt > 100) throw StoreError("cannot register the lock name " + detail::quoted(name));
        }
    }

    Lock holding(std::shared_ptr<detail::PgConnection> connection, std::string number) {
        auto release = [this, connection = std::move(connection), number = std::move(number)] {
            // A lost connection took the lock with it, maybe long before: a failed release. Only a connection
            // that unlocked is reused.
            if (connection->broken()) {
                throw PostgresConnectionLost("the lock's connection was lost before its release");
            }
            if (connection->exec(unlock_sql_, {number}).text(0, 0) != "t") {
                throw StoreError("the lock's session no longer held it at its release");
            }
            give_back(connection);
        };
        return Lock{std::move(release), &failed_releases_};
    }

    std::shared_ptr<detail::PgConnection> borrow() {
        {
            std::lock_guard lock{mutex_};
            while (!idle_.empty()) {
                auto connection = std::move(idle_.back());
                idle_.pop_back();
                if (!connection->broken()) return connection;
            }
        }
        return std::make_shared<detail::PgConnection>(detail::postgres_conninfo(database_));
    }

    void give_back(std::shared_ptr<detail::PgConnection> connection) {
        std::lock_guard lock{mutex_};
        idle_.push_back(std::move(connection));
    }

    static constexpr std::int64_t max_lock_number = std::int64_t{1} << 32;

    PostgresOptions database_;
    std::string id_sql_;
    std::string lock_sql_;
    std::string try_lock_sql_;
    std::string unlock_sql_;
    std::mutex mutex_;
    std::vector<std::shared_ptr<detail::PgConnection>> idle_;
    std::atomic<std::uint64_t> failed_releases_{0};
};

static_assert(LockProvider<PostgresLockProvider>);

}  // namespace krmx

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
// Keys are names; each name gets a number in the schema's `krmx_locks` table, and the advisory lock is
// (hash of the schema, that number), so lock names never collide within a schema.

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
        const std::string s = detail::quoted(database_.schema);
        id_sql_ = "WITH added AS (INSERT INTO " + s +
                  ".krmx_locks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id) SELECT id FROM "
                  "added UNION ALL SELECT id FROM " +
                  s + ".krmx_locks WHERE name = $1";
        class_sql_ = "hashtext('krmx-lock:" + database_.schema + "')";
        give_back(std::move(first));
    }
    PostgresLockProvider(const PostgresLockProvider&) = delete;
    PostgresLockProvider& operator=(const PostgresLockProvider&) = delete;

    /// Waits (in the server) until `key` is free, then holds it until the Lock is released or destroyed.
    /// The provider must outlive its locks.
    [[nodiscard]] Lock acquire(std::string_view key) {
        if (key.find('\0') != std::string_view::npos) {
            throw StoreError("the lock key contains a NUL character, which PostgreSQL cannot store");
        }
        std::shared_ptr<detail::PgConnection> connection = borrow();
        const std::string id = lock_id(*connection, key);
        connection->exec("SELECT pg_advisory_lock(" + class_sql_ + ", " + id + ")");
        return holding(std::move(connection), id);
    }

    /// Holds `key` if it is free right now; empty (at once) when someone holds it.
    [[nodiscard]] std::optional<Lock> try_acquire(std::string_view key) {
        if (key.find('\0') != std::string_view::npos) {
            throw StoreError("the lock key contains a NUL character, which PostgreSQL cannot store");
        }
        std::shared_ptr<detail::PgConnection> connection = borrow();
        const std::string id = lock_id(*connection, key);
        if (connection->exec("SELECT pg_try_advisory_lock(" + class_sql_ + ", " + id + ")").text(0, 0) !=
            "t") {
            give_back(connection);
            return std::nullopt;
        }
        return holding(std::move(connection), id);
    }

    [[nodiscard]] const PostgresOptions& database() const noexcept { return database_; }

  private:
    // The number of lock `key`; made on first use. A concurrent first use may make the insert see nothing
    // (it waited for the other insert, and the statement's snapshot predates it): ask again.
    std::string lock_id(detail::PgConnection& connection, std::string_view key) {
        for (int attempt = 0;; ++attempt) {
            const auto row = connection.exec(id_sql_, {key});
            if (row.rows() > 0) return std::string{row.text(0, 0)};
            if (attempt > 100) throw StoreError("cannot register the lock '" + std::string{key} + "'");
        }
    }

    Lock holding(std::shared_ptr<detail::PgConnection> connection, std::string id) {
        return Lock{[this, connection = std::move(connection), id = std::move(id)] {
            // A lost connection has released the lock already; only a live one is unlocked and reused.
            if (connection->broken()) return;
            connection->exec("SELECT pg_advisory_unlock(" + class_sql_ + ", " + id + ")");
            give_back(connection);
        }};
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

    PostgresOptions database_;
    std::string id_sql_;
    std::string class_sql_;
    std::mutex mutex_;
    std::vector<std::shared_ptr<detail::PgConnection>> idle_;
};

static_assert(LockProvider<PostgresLockProvider>);

}  // namespace krmx

#pragma once
// The PostgreSQL event store's connections: opened on demand, pooled, and each operation retried on a new
// connection with backoff when its connection is lost (a server restart, `pg_terminate_backend`), until
// `reconnect_timeout` passes, the store closes or the caller gives up. Link the `krmx::postgres` target.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/postgres_options.hpp"

namespace krmx::detail {

/// A pooled connection and the names of the streams it has met (streams are never renamed or removed).
struct PgPooledConnection {
    explicit PgPooledConnection(std::unique_ptr<PgConnection> connection) : pg(std::move(connection)) {}
    std::unique_ptr<PgConnection> pg;
    std::unordered_map<std::int64_t, std::string> stream_names;
    // Whether a COPY is streaming on it (PgReads::stream_range): no other statement can run meanwhile.
    bool copying = false;
    // The last stream met: rows of one stream tend to come together.
    std::int64_t last_stream_id = -1;
    const std::string* last_stream = nullptr;
};

/// Marks a connection as copying for a scope.
struct CopyingOn {
    explicit CopyingOn(PgPooledConnection& connection) noexcept : connection(connection) {
        connection.copying = true;
    }
    CopyingOn(const CopyingOn&) = delete;
    CopyingOn& operator=(const CopyingOn&) = delete;
    ~CopyingOn() { connection.copying = false; }
    PgPooledConnection& connection;
};

class PgPool {
  public:
    /// `closing` is the store's: once set, no operation is retried any more.
    PgPool(std::string conninfo, PostgresEventStoreOptions options, const std::atomic<bool>& closing)
        : conninfo_(std::move(conninfo)), options_(options), closing_(closing) {}
    PgPool(const PgPool&) = delete;
    PgPool& operator=(const PgPool&) = delete;

    /// Sets a new connection up as every connection of the pool is (durability).
    void prepare(PgConnection& connection) const {
        if (options_.durability == PostgresDurability::group_commit)
            connection.exec("SET synchronous_commit = off");
    }

    /// Keeps `connection` for the next borrower, unless it is broken.
    void give_back(std::unique_ptr<PgPooledConnection> connection) noexcept {
        if (connection->pg->broken()) return;  // closed here; the next borrow connects anew
        try {
            std::lock_guard lock{mutex_};
            idle_.push_back(std::move(connection));
        } catch (...) {
            // Closed instead of kept: nothing is lost, the next borrow connects anew.
        }
    }

    /// Runs `work` on a pooled connection; on a lost connection, retries on a new one with backoff until
    /// `reconnect_timeout` passes, the store closes or `stop` is set.
    template <class Work>
    auto retrying(const std::atomic<bool>* stop, Work work)
        -> std::invoke_result_t<Work&, PgPooledConnection&> {
        const auto give_up = std::chrono::steady_clock::now() + options_.reconnect_timeout;
        auto backoff = std::chrono::milliseconds{20};
        for (;;) {
            try {
                auto lease = borrow();
                return work(*lease);
            } catch (const PostgresConnectionLost&) {
                const auto cancelled = [&] {
                    return closing_.load(std::memory_order_acquire) ||
                           (stop != nullptr && stop->load(std::memory_order_acquire));
                };
                if (cancelled() || std::chrono::steady_clock::now() + backoff > give_up) throw;
                retries_.fetch_add(1, std::memory_order_relaxed);
                // Sleep in short steps so that a cancelled subscription or a closing store is not held up.
                const auto wake = std::chrono::steady_clock::now() + backoff;
                while (std::chrono::steady_clock::now() < wake && !cancelled())
                    std::this_thread::sleep_for(std::chrono::milliseconds{5});
                if (cancelled()) throw;
                backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
            }
        }
    }

    /// Operations repeated on a new connection (StoreStatistics::connection_retries).
    [[nodiscard]] std::uint64_t retries() const noexcept { return retries_.load(std::memory_order_relaxed); }

  private:
    struct Return {
        PgPool* pool;
        void operator()(PgPooledConnection* connection) const noexcept {
            pool->give_back(std::unique_ptr<PgPooledConnection>{connection});
        }
    };
    using Lease = std::unique_ptr<PgPooledConnection, Return>;

    Lease borrow() {
        {
            std::lock_guard lock{mutex_};
            if (!idle_.empty()) {
                auto connection = std::move(idle_.back());
                idle_.pop_back();
                return Lease{connection.release(), Return{this}};
            }
        }
        auto connection = std::make_unique<PgConnection>(conninfo_);
        prepare(*connection);
        return Lease{std::make_unique<PgPooledConnection>(std::move(connection)).release(), Return{this}};
    }

    std::string conninfo_;
    PostgresEventStoreOptions options_;
    const std::atomic<bool>& closing_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<PgPooledConnection>> idle_;
    std::atomic<std::uint64_t> retries_{0};
};

}  // namespace krmx::detail

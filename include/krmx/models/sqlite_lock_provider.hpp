#pragma once
// Locks across processes, kept as rows of an SQLite file that every process opens. Link `krmx::sqlite`.
//
// A lock is a row (key: its name, owner, expires_at) in `krmx_locks`, taken in a `BEGIN IMMEDIATE`
// transaction (which serializes the check and the insert across processes) and deleted on release. Every lock
// has a lease: the row of a holder that crashed stops counting when its lease ends, so one dead process
// cannot block a name forever. A holder that keeps a lock longer than its lease may lose it to another
// process: choose a lease well above the longest decision. Use a file of its own (not an event store's file).
// The processes must share one machine and a local file system: the file is in WAL mode, whose index
// lives in shared memory, and leases compare each process's wall clock.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "krmx/models/lock_provider.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

struct SqliteLockOptions {
    /// How long a lock counts without its holder (a crashed process frees its locks after this).
    std::chrono::milliseconds lease{30'000};
    /// First wait between attempts on a held lock; doubles up to `max_poll`.
    std::chrono::milliseconds poll{1};
    std::chrono::milliseconds max_poll{50};
};

class SqliteLockProvider {
  public:
    explicit SqliteLockProvider(std::filesystem::path path, SqliteLockOptions options = {})
        : path_(std::move(path)), options_(options), owner_prefix_(new_event_id()) {
        connection_ = std::make_unique<detail::SqliteConnection>(path_);
        connection_->use_wal(path_);  // several processes may open a new lock file at once
        connection_->exec("PRAGMA synchronous=NORMAL");
        connection_->exec(
            "CREATE TABLE IF NOT EXISTS krmx_locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
            "expires_at INTEGER NOT NULL)");
    }
    SqliteLockProvider(const SqliteLockProvider&) = delete;
    SqliteLockProvider& operator=(const SqliteLockProvider&) = delete;

    /// Waits until `name` is free (or its holder's lease ended), then holds it.
    [[nodiscard]] Lock acquire(std::string_view name) {
        detail::check_lock_name(name);
        std::string owner;
        {
            std::lock_guard lock{mutex_};
            owner = owner_prefix_ + "/" + std::to_string(++next_owner_);
        }
        auto wait = options_.poll;
        while (!try_take(name, owner)) {
            std::this_thread::sleep_for(wait);
            wait = std::min(wait * 2, options_.max_poll);
        }
        return Lock{[this, name = std::string{name}, owner = std::move(owner)] { give_back(name, owner); },
                    &failed_releases_};
    }

    /// Releases that could not delete their row (the lock then ends with its lease).
    [[nodiscard]] std::uint64_t failed_releases() const noexcept { return failed_releases_.load(); }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    static std::int64_t now_ms() {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    bool try_take(std::string_view name, const std::string& owner) {
        std::lock_guard lock{mutex_};  // one connection, one thread at a time
        connection_->exec("BEGIN IMMEDIATE");
        try {
            const std::int64_t now = now_ms();
            auto& take = connection_->statement(
                "INSERT INTO krmx_locks (key, owner, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO "
                "UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE expires_at < ?4");
            detail::Reset reset{take};
            take.bind(1, name);
            take.bind(2, std::string_view{owner});
            take.bind(3, now + options_.lease.count());
            take.bind(4, now);
            take.run();
            const bool taken = sqlite3_changes(connection_->handle()) > 0;
            connection_->exec("COMMIT");
            return taken;
        } catch (...) {
            sqlite3_exec(connection_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
    }

    void give_back(const std::string& name, const std::string& owner) {
        std::lock_guard lock{mutex_};
        auto& remove = connection_->statement("DELETE FROM krmx_locks WHERE key = ?1 AND owner = ?2");
        detail::Reset reset{remove};
        remove.bind(1, std::string_view{name});
        remove.bind(2, std::string_view{owner});
        remove.run();
    }

    std::filesystem::path path_;
    SqliteLockOptions options_;
    std::string owner_prefix_;  // unique per provider: a process's locks are told apart from another's
    std::uint64_t next_owner_ = 0;
    std::mutex mutex_;
    std::unique_ptr<detail::SqliteConnection> connection_;
    std::atomic<std::uint64_t> failed_releases_{0};
};

static_assert(LockProvider<SqliteLockProvider>);

}  // namespace krmx

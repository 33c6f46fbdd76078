#pragma once
// The SQLite event store's WAL checkpointer: a thread of its own copies the write-ahead log into the
// database file, so that the writer never stalls on that copy (and its fsync). A commit hook on the writer's
// connection replaces SQLite's automatic checkpoint on commit and wakes the thread once the log holds about
// 1000 pages (SQLite's own default). Link the `krmx::sqlite` CMake target.

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "krmx/store/detail/sqlite.hpp"

namespace krmx::detail {

class SqliteCheckpointer {
  public:
    explicit SqliteCheckpointer(std::filesystem::path path) : path_(std::move(path)) {}
    SqliteCheckpointer(const SqliteCheckpointer&) = delete;
    SqliteCheckpointer& operator=(const SqliteCheckpointer&) = delete;
    ~SqliteCheckpointer() { stop(); }

    /// Takes over the checkpoints of the file after commits on `writer` (the store's write connection,
    /// which must outlive the commits it makes) and starts the thread.
    void start(sqlite3* writer) {
        sqlite3_wal_hook(writer, &SqliteCheckpointer::on_wal_commit, this);
        thread_ = std::thread([this] { loop(); });
    }

    /// Ends the thread (a checkpoint under way finishes first).
    void stop() noexcept {
        {
            std::lock_guard lock{mutex_};
            stop_ = true;
        }
        wanted_cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    /// Checkpoints that failed (StoreStatistics::failed_checkpoints).
    [[nodiscard]] std::uint64_t failures() const noexcept {
        return failures_.load(std::memory_order_relaxed);
    }

  private:
    // SQLite's own default: checkpoint once the log holds about 1000 pages.
    static constexpr int checkpoint_after_frames = 1000;

    static int on_wal_commit(void* self, sqlite3*, const char*, int frames) {
        if (frames >= checkpoint_after_frames) {
            auto* checkpointer = static_cast<SqliteCheckpointer*>(self);
            {
                std::lock_guard lock{checkpointer->mutex_};
                checkpointer->wanted_ = true;
            }
            checkpointer->wanted_cv_.notify_one();
        }
        return SQLITE_OK;
    }

    void loop() {
        std::unique_ptr<SqliteConnection> connection;
        for (;;) {
            {
                std::unique_lock lock{mutex_};
                wanted_cv_.wait(lock, [&] { return wanted_ || stop_; });
                if (stop_) return;
                wanted_ = false;
            }
            // A checkpoint that fails only leaves the log longer; the next one tries again. It is counted.
            bool done = false;
            try {
                if (!connection) connection = std::make_unique<SqliteConnection>(path_);
                // PASSIVE: copies what it can without blocking the writer or readers. BUSY: another
                // checkpoint is running (SqliteEventStore::checkpoint_wal), which does the work.
                const int code = sqlite3_wal_checkpoint_v2(connection->handle(), nullptr,
                                                           SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
                done = code == SQLITE_OK || code == SQLITE_BUSY;
            } catch (...) {
                // The connection could not be opened: counted below, and the next checkpoint tries again.
            }
            if (!done) failures_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    std::filesystem::path path_;
    std::mutex mutex_;
    std::condition_variable wanted_cv_;
    bool wanted_ = false;
    bool stop_ = false;
    std::atomic<std::uint64_t> failures_{0};
    std::thread thread_;
};

}  // namespace krmx::detail

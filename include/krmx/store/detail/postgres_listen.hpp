#pragma once
// The PostgreSQL event store's listener: one thread and connection per store, opened with the first
// subscription, that `LISTEN`s on the schema's channel (every append notifies its new head when it commits)
// and tells the store's HeadNotifier, and polls the head every `poll_interval` as a fallback. A dropped
// connection is opened again with backoff; subscribers meanwhile wait, and resume after their last event.
// Link the `krmx::postgres` CMake target.

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/detail/subscription_worker.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/postgres_options.hpp"

namespace krmx::detail {

class PgListener {
  public:
    /// Listens to `schema`'s appends for `notifier`. `closing` is the store's: once set, the thread ends.
    PgListener(std::string conninfo, const std::string& schema, std::shared_ptr<HeadNotifier> notifier,
               std::chrono::milliseconds poll_interval, const std::atomic<bool>& closing)
        : conninfo_(std::move(conninfo)),
          channel_(krmx_channel(schema)),
          head_sql_(krmx_head_sql(schema)),
          notifier_(std::move(notifier)),
          poll_interval_(poll_interval),
          closing_(closing) {}
    PgListener(const PgListener&) = delete;
    PgListener& operator=(const PgListener&) = delete;
    ~PgListener() { stop(); }

    /// Starts the thread, unless it runs already.
    void start() {
        std::lock_guard lock{mutex_};
        if (thread_.joinable()) return;
        if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0)
            throw StoreError("cannot create a pipe for the listener");
        thread_ = std::thread([this] { listen_loop(); });
    }

    /// Ends the thread and closes its connection.
    void stop() noexcept {
        std::lock_guard lock{mutex_};
        if (!thread_.joinable()) return;
        const char byte = 1;
        while (::write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
        }
        thread_.join();
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

    /// Times the connection failed and was opened again (StoreStatistics::listener_failures).
    [[nodiscard]] std::uint64_t failures() const noexcept {
        return failures_.load(std::memory_order_relaxed);
    }

  private:
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
        std::unique_ptr<PgConnection> connection;
        auto backoff = std::chrono::milliseconds{20};
        for (;;) {
            bool readable = false;
            try {
                if (!connection) {
                    connection = std::make_unique<PgConnection>(conninfo_);
                    connection->exec("LISTEN " + channel_);
                    // Whatever was committed while nobody listened.
                    notifier_->publish(static_cast<Position>(connection->exec(head_sql_).int64(0, 0)));
                    backoff = std::chrono::milliseconds{20};
                }
                if (!wait_readable(PQsocket(connection->handle()), poll_interval_, readable)) return;
                if (!readable) {
                    // The polling fallback.
                    notifier_->publish(static_cast<Position>(connection->exec(head_sql_).int64(0, 0)));
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
                failures_.fetch_add(1, std::memory_order_relaxed);
                connection.reset();
                if (!wait_readable(-1, backoff, readable)) return;
                backoff = std::min(backoff * 2, std::chrono::milliseconds{2000});
            }
        }
    }

    std::string conninfo_;
    std::string channel_;
    std::string head_sql_;
    std::shared_ptr<HeadNotifier> notifier_;
    std::chrono::milliseconds poll_interval_;
    const std::atomic<bool>& closing_;
    std::mutex mutex_;
    std::thread thread_;
    int wake_[2] = {-1, -1};
    std::atomic<std::uint64_t> failures_{0};
};

}  // namespace krmx::detail

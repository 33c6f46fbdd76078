#pragma once
// Subscription delivery shared by every store. Each subscription owns one thread that reads committed
// events from its store after the last position it delivered; catch-up and live delivery are the same
// loop, so the hand-over can have no gap and no duplicate. A store publishes its head only after the
// events up to it are committed and readable, so a reader never sees position n+1 before n.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "krmx/core/subscription.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// The committed head of a store and a wake-up for the subscribers waiting for it to move.
class HeadNotifier {
  public:
    explicit HeadNotifier(Position head = 0) : head_(head) {}

    [[nodiscard]] Position head() const noexcept { return head_.load(std::memory_order_acquire); }

    /// Call after the events up to `head` are committed and readable.
    void publish(Position head) {
        {
            std::lock_guard lock{mutex_};
            if (head > head_.load(std::memory_order_relaxed)) head_.store(head, std::memory_order_release);
        }
        moved_.notify_all();
    }

    /// The store is going away: every waiter returns.
    void close() {
        {
            std::lock_guard lock{mutex_};
            closed_ = true;
        }
        moved_.notify_all();
    }

    /// Waits until the head passes `after`; false when the store closes or `stop` is set (under `wake`).
    [[nodiscard]] bool wait_beyond(Position after, const std::atomic<bool>& stop) {
        std::unique_lock lock{mutex_};
        moved_.wait(lock, [&] {
            return closed_ || stop.load(std::memory_order_acquire) ||
                   head_.load(std::memory_order_relaxed) > after;
        });
        return !closed_ && !stop.load(std::memory_order_acquire);
    }

    /// Sets `stop` so that a waiter cannot miss it.
    void wake(std::atomic<bool>& stop) {
        {
            std::lock_guard lock{mutex_};
            stop.store(true, std::memory_order_release);
        }
        moved_.notify_all();
    }

  private:
    std::atomic<Position> head_;
    bool closed_ = false;
    std::mutex mutex_;
    std::condition_variable moved_;
};

/// Reads the committed events in (after, up_to] that pass the subscription's filter, at most max_count.
using RangeReader =
    std::function<std::vector<RecordedEvent>(Position after, Position up_to, std::size_t max_count)>;

class SubscriptionWorker : public std::enable_shared_from_this<SubscriptionWorker> {
  public:
    /// `error_handler_failures` counts the `on_error` handlers that threw.
    SubscriptionWorker(std::shared_ptr<HeadNotifier> notifier, RangeReader reader,
                       SubscriptionHandlers handlers, Position after, std::size_t batch_size,
                       std::shared_ptr<std::atomic<std::uint64_t>> error_handler_failures)
        : notifier_(std::move(notifier)),
          reader_(std::move(reader)),
          handlers_(std::move(handlers)),
          after_(after),
          batch_size_(std::max<std::size_t>(batch_size, 1)),
          error_handler_failures_(std::move(error_handler_failures)) {}

    SubscriptionWorker(const SubscriptionWorker&) = delete;
    SubscriptionWorker& operator=(const SubscriptionWorker&) = delete;

    ~SubscriptionWorker() {
        // The thread holds a reference to its worker, so the last one may be dropped on the thread itself.
        if (thread_.joinable()) {
            if (thread_.get_id() == std::this_thread::get_id()) {
                thread_.detach();
            } else {
                thread_.join();
            }
        }
    }

    void start() {
        std::lock_guard lock{join_mutex_};
        thread_ = std::thread([self = shared_from_this()] { self->run(); });
    }

    /// Ends delivery. From another thread it returns once no callback is running any more; from inside a
    /// callback it returns at once and nothing more is delivered after that callback.
    void stop() noexcept {
        notifier_->wake(stop_);
        if (current() == this) return;
        std::lock_guard lock{join_mutex_};
        if (thread_.joinable()) thread_.join();
    }

    [[nodiscard]] bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }

  private:
    static SubscriptionWorker*& current() noexcept {
        thread_local SubscriptionWorker* worker = nullptr;
        return worker;
    }

    void run() {
        current() = this;
        try {
            deliver();
        } catch (...) {
            stop_.store(true, std::memory_order_release);
            if (handlers_.on_error) {
                try {
                    handlers_.on_error(std::current_exception());
                } catch (...) {
                    // Nobody left to tell but the store's statistics.
                    error_handler_failures_->fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
        current() = nullptr;
    }

    void deliver() {
        Position last = after_;
        bool caught_up = false;
        while (!stopped()) {
            const Position head = notifier_->head();
            while (last < head) {
                if (stopped()) return;
                const auto batch = reader_(last, head, batch_size_);
                for (const auto& event : batch) {
                    if (stopped()) return;
                    if (handlers_.on_event) handlers_.on_event(event);
                }
                // A short batch means everything up to `head` was read, filtered or not.
                last = batch.size() < batch_size_ ? head : batch.back().position;
            }
            if (!caught_up) {
                caught_up = true;
                if (stopped()) return;
                if (handlers_.on_caught_up) handlers_.on_caught_up();
            }
            if (!notifier_->wait_beyond(last, stop_)) return;
        }
    }

    std::shared_ptr<HeadNotifier> notifier_;
    RangeReader reader_;
    SubscriptionHandlers handlers_;
    Position after_;
    std::size_t batch_size_;
    std::shared_ptr<std::atomic<std::uint64_t>> error_handler_failures_;
    std::atomic<bool> stop_{false};
    std::mutex join_mutex_;
    std::thread thread_;
};

/// The subscriptions of one store. The store calls `stop_all()` first thing in its destructor, so no
/// worker reads from a store that is being torn down.
class SubscriptionRegistry {
  public:
    SubscriptionRegistry() = default;
    SubscriptionRegistry(const SubscriptionRegistry&) = delete;
    SubscriptionRegistry& operator=(const SubscriptionRegistry&) = delete;
    ~SubscriptionRegistry() { stop_all(); }

    /// Starts a worker that delivers from `from` on. `read_range(after, up_to, max_count, filter)` is the
    /// store's own read of the committed events in (after, up_to].
    template <class ReadRange>
    [[nodiscard]] Subscription start(std::shared_ptr<HeadNotifier> notifier, SubscribeFrom from,
                                     SubscriptionHandlers handlers, EventFilter filter,
                                     std::size_t batch_size, ReadRange read_range) {
        const Position after = from.is_end() ? notifier->head() : from.position();
        RangeReader reader = [read_range = std::move(read_range), filter = std::move(filter)](
                                 Position after_position, Position up_to, std::size_t max) {
            return read_range(after_position, up_to, max, filter);
        };
        auto worker =
            std::make_shared<SubscriptionWorker>(std::move(notifier), std::move(reader), std::move(handlers),
                                                 after, batch_size, error_handler_failures_);
        {
            std::lock_guard lock{mutex_};
            std::erase_if(workers_, [](const std::weak_ptr<SubscriptionWorker>& weak) {
                const auto alive = weak.lock();
                return !alive || alive->stopped();
            });
            workers_.push_back(worker);
        }
        worker->start();
        return Subscription{[worker] {
            worker->stop();
        }};
    }

    /// How many `on_error` handlers of its subscriptions threw (StoreStatistics::error_handler_failures).
    [[nodiscard]] std::uint64_t error_handler_failures() const noexcept {
        return error_handler_failures_->load(std::memory_order_relaxed);
    }

    void stop_all() noexcept {
        std::vector<std::weak_ptr<SubscriptionWorker>> workers;
        {
            std::lock_guard lock{mutex_};
            workers.swap(workers_);
        }
        for (const auto& weak : workers) {
            if (const auto worker = weak.lock()) worker->stop();
        }
    }

  private:
    std::mutex mutex_;
    std::vector<std::weak_ptr<SubscriptionWorker>> workers_;
    // Shared with the workers: a worker whose handle outlives the store may still count.
    std::shared_ptr<std::atomic<std::uint64_t>> error_handler_failures_ =
        std::make_shared<std::atomic<std::uint64_t>>(0);
};

/// The subscriptions of a store whose own commits move its head (memory, SQLite): the head, the
/// subscriptions, and the store's read of its committed events that they catch up and go live with, in
/// batches of `batch_size`. The store calls `close()` first thing in its destructor.
class LocalSubscriptions {
  public:
    /// `read_range(after, up_to, max_count, filter)`: the store's read of its committed events in
    /// (after, up_to] that pass `filter`, at most `max_count`.
    using ReadRange =
        std::function<std::vector<RecordedEvent>(Position, Position, std::size_t, const EventFilter&)>;

    LocalSubscriptions(ReadRange read_range, std::size_t batch_size)
        : read_range_(std::move(read_range)), batch_size_(batch_size) {}
    LocalSubscriptions(const LocalSubscriptions&) = delete;
    LocalSubscriptions& operator=(const LocalSubscriptions&) = delete;
    ~LocalSubscriptions() { close(); }

    /// Delivery happens on a thread owned by the subscription; cancel it through the returned handle.
    [[nodiscard]] Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                                         EventFilter filter) {
        return registry_.start(notifier_, from, std::move(handlers), std::move(filter), batch_size_,
                               read_range_);
    }

    /// Call after the events up to `head` are committed and readable.
    void publish(Position head) { notifier_->publish(head); }
    /// The last committed position published.
    [[nodiscard]] Position head() const noexcept { return notifier_->head(); }
    [[nodiscard]] std::uint64_t error_handler_failures() const noexcept {
        return registry_.error_handler_failures();
    }

    /// Stops every subscription; nothing is delivered after this returns.
    void close() noexcept {
        registry_.stop_all();
        notifier_->close();
    }

  private:
    ReadRange read_range_;
    std::size_t batch_size_;
    std::shared_ptr<HeadNotifier> notifier_ = std::make_shared<HeadNotifier>();
    SubscriptionRegistry registry_;
};

}  // namespace krmx::detail

#pragma once
// krmx::testing::SubscriptionRecorder: records what an event store subscription delivers (events, the
// caught_up signal, an error), so that a test can wait for it with a timeout instead of sleeping:
//
//   krmx::testing::SubscriptionRecorder recorder;
//   auto subscription = store.subscribe(krmx::SubscribeFrom::start(), recorder.handlers());
//   if (!recorder.wait_for_events(3)) ...;   // false after the timeout, or once an error arrived

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <vector>

#include "krmx/store/event_store.hpp"

namespace krmx::testing {

class SubscriptionRecorder {
  public:
    /// Handlers that record into this recorder; it must outlive the subscription.
    [[nodiscard]] SubscriptionHandlers handlers() {
        return SubscriptionHandlers{
            .on_event =
                [this](const RecordedEvent& e) {
                    {
                        std::lock_guard lock{mutex_};
                        if (!events_.empty() && e.position <= events_.back().position) ++out_of_order_;
                        events_.push_back(e);
                    }
                    changed_.notify_all();
                },
            .on_caught_up =
                [this] {
                    {
                        std::lock_guard lock{mutex_};
                        ++caught_up_;
                        caught_up_after_ = events_.size();
                    }
                    changed_.notify_all();
                },
            .on_error =
                [this](std::exception_ptr error) {
                    {
                        std::lock_guard lock{mutex_};
                        error_ = error;
                    }
                    changed_.notify_all();
                },
        };
    }

    /// Whether `count` events arrived within `timeout` (false at once when an error arrived first).
    [[nodiscard]] bool wait_for_events(std::size_t count,
                                       std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return events_.size() >= count || error_; }) &&
               events_.size() >= count;
    }
    [[nodiscard]] bool wait_caught_up(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return caught_up_ > 0; });
    }
    [[nodiscard]] bool wait_error(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return error_ != nullptr; });
    }

    [[nodiscard]] std::vector<RecordedEvent> events() const {
        std::lock_guard lock{mutex_};
        return events_;
    }
    [[nodiscard]] std::vector<Position> positions() const {
        std::lock_guard lock{mutex_};
        std::vector<Position> result;
        for (const auto& e : events_) result.push_back(e.position);
        return result;
    }
    /// How often caught_up was signalled (once is right).
    [[nodiscard]] int caught_up() const {
        std::lock_guard lock{mutex_};
        return caught_up_;
    }
    /// How many events had arrived when caught_up was signalled.
    [[nodiscard]] std::size_t caught_up_after() const {
        std::lock_guard lock{mutex_};
        return caught_up_after_;
    }
    /// Events that arrived at or below the position of the one before (0 is right).
    [[nodiscard]] int out_of_order() const {
        std::lock_guard lock{mutex_};
        return out_of_order_;
    }
    [[nodiscard]] std::exception_ptr error() const {
        std::lock_guard lock{mutex_};
        return error_;
    }

  private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<RecordedEvent> events_;
    int caught_up_ = 0;
    std::size_t caught_up_after_ = 0;
    int out_of_order_ = 0;
    std::exception_ptr error_;
};

}  // namespace krmx::testing

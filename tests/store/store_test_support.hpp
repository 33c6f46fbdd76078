#pragma once
// Shared by the store tests: events to append, random names, and a subscription recorder that tests can wait
// on. The stores themselves are the fixtures of stores.hpp.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "krmx/store/event_store.hpp"
#include "stores.hpp"
#include "temp_dir.hpp"

namespace krmx::testing {

/// `size` random letters and digits (the same for the same `seed`): valid UTF-8 that does not compress, as
/// PostgreSQL would compress a long index entry of repeated characters until it fits.
inline std::string random_name(std::size_t size, unsigned seed) {
    static constexpr std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::mt19937 generator{seed};
    std::uniform_int_distribution<std::size_t> pick{0, alphabet.size() - 1};
    std::string name(size, ' ');
    for (char& c : name) c = alphabet[pick(generator)];
    return name;
}

/// An event with a type and a payload, and optionally an id.
inline NewEvent event(std::string type, nlohmann::json payload = nullptr, std::string id = {}) {
    NewEvent e;
    e.id = std::move(id);
    e.type = std::move(type);
    if (!payload.is_null()) e.payload = std::move(payload);
    return e;
}

/// Records what a subscription delivers; tests wait on it with a timeout rather than sleeping.
class Recorder {
  public:
    SubscriptionHandlers handlers() {
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

    bool wait_for_events(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return events_.size() >= count || error_; }) &&
               events_.size() >= count;
    }
    bool wait_caught_up(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return caught_up_ > 0; });
    }
    bool wait_error(std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, timeout, [&] { return error_ != nullptr; });
    }

    std::vector<RecordedEvent> events() const {
        std::lock_guard lock{mutex_};
        return events_;
    }
    std::vector<Position> positions() const {
        std::lock_guard lock{mutex_};
        std::vector<Position> result;
        for (const auto& e : events_) result.push_back(e.position);
        return result;
    }
    int caught_up() const {
        std::lock_guard lock{mutex_};
        return caught_up_;
    }
    std::size_t caught_up_after() const {
        std::lock_guard lock{mutex_};
        return caught_up_after_;
    }
    int out_of_order() const {
        std::lock_guard lock{mutex_};
        return out_of_order_;
    }
    std::exception_ptr error() const {
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

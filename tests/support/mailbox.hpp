#pragma once
// A mailbox that plays an application's event loop for tests and benchmarks: writer threads post
// completions (krmx::DurableOptions::post), the test's thread runs them.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace krmx::testing {

class Mailbox {
  public:
    /// What krmx::DurableOptions takes as `post`: callable from any thread.
    [[nodiscard]] std::function<void(std::function<void()>)> poster() {
        return [this](std::function<void()> f) {
            {
                std::lock_guard lock{mutex_};
                posted_.push_back(std::move(f));
            }
            arrived_.notify_all();
        };
    }
    /// Runs what was posted so far; returns how many.
    std::size_t run_posted() {
        std::deque<std::function<void()>> ready;
        {
            std::lock_guard lock{mutex_};
            ready.swap(posted_);
        }
        for (auto& f : ready) f();
        return ready.size();
    }
    /// Waits up to `limit` for something to be posted, then runs it; returns how many ran.
    std::size_t wait_and_run(std::chrono::milliseconds limit) {
        {
            std::unique_lock lock{mutex_};
            arrived_.wait_for(lock, limit, [this] { return !posted_.empty(); });
        }
        return run_posted();
    }

  private:
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::deque<std::function<void()>> posted_;
};

}  // namespace krmx::testing

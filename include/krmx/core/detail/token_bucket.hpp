#pragma once
// A token bucket: the one rate limit of the library (the session's per-address budgets, the log's
// per-event budget).

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "krmx/core/clock.hpp"

namespace krmx::detail {

// A budget of `capacity` that refills at `capacity` per `period` and starts full: a rate limit that allows
// a burst as large as one period's worth.
class TokenBucket {
  public:
    [[nodiscard]] bool take(TimePoint now, std::size_t capacity, Duration period) {
        refill(now, capacity, period);
        if (tokens_ < 1.0) return false;
        tokens_ -= 1.0;
        return true;
    }
    [[nodiscard]] bool full(TimePoint now, std::size_t capacity, Duration period) {
        refill(now, capacity, period);
        return tokens_ >= static_cast<double>(capacity);
    }

  private:
    void refill(TimePoint now, std::size_t capacity, Duration period) {
        const auto cap = static_cast<double>(capacity);
        if (!started_) {
            started_ = true;
            tokens_ = cap;
            at_ = now;
            return;
        }
        if (now <= at_) return;
        const double periods = std::chrono::duration<double>(now - at_).count() /
                               std::chrono::duration<double>(period).count();
        tokens_ = std::min(cap, tokens_ + cap * periods);
        at_ = now;
    }

    double tokens_ = 0.0;
    TimePoint at_{};
    bool started_ = false;
};

}  // namespace krmx::detail

#pragma once
// Time comes from an injectable clock, never from a hidden one: tests drive a ManualClock.

#include <chrono>
#include <concepts>
#include <type_traits>

#if defined(__linux__)
#include <time.h>
#endif

namespace krmx {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

/// Anything with `now()` returning a krmx::TimePoint.
template <class C>
concept ClockSource = requires(const C& c) {
    { c.now() } -> std::convertible_to<TimePoint>;
};

/// The real monotonic clock.
struct SteadyClock {
    [[nodiscard]] TimePoint now() const noexcept { return Clock::now(); }
};

/// The same monotonic clock read at the kernel's tick (a few ms) instead of to the nanosecond, where the
/// platform has it: several times cheaper, and plenty for expiring optimistic events after seconds.
/// The default clock of ClockRef. Elsewhere it is SteadyClock.
struct CoarseSteadyClock {
    [[nodiscard]] TimePoint now() const noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
            timespec ts{};
            if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) {
                // libstdc++ and libc++ read steady_clock from CLOCK_MONOTONIC: the same epoch.
                return TimePoint{std::chrono::duration_cast<Duration>(std::chrono::seconds{ts.tv_sec} +
                                                                      std::chrono::nanoseconds{ts.tv_nsec})};
            }
        }
#endif
        return Clock::now();
    }
};

/// A clock that moves only when told to; starts at an arbitrary fixed point.
class ManualClock {
  public:
    [[nodiscard]] TimePoint now() const noexcept { return now_; }
    void advance(Duration by) noexcept { now_ += by; }
    void set(TimePoint to) noexcept { now_ = to; }

  private:
    TimePoint now_{std::chrono::hours{1}};
};

/// A non-owning reference to any clock source; the referenced clock must outlive it.
class ClockRef {
  public:
    ClockRef() noexcept : ClockRef(default_clock()) {}
    template <ClockSource C>
    requires(!std::same_as<C, ClockRef>) ClockRef(const C& clock)
    noexcept  // NOLINT(google-explicit-constructor): any clock converts
        : object_(&clock), now_([](const void* c) -> TimePoint { return static_cast<const C*>(c)->now(); }) {}

    [[nodiscard]] TimePoint now() const { return now_(object_); }

  private:
    static const CoarseSteadyClock& default_clock() noexcept {
        static constexpr CoarseSteadyClock clock;
        return clock;
    }
    const void* object_;
    TimePoint (*now_)(const void*);
};

}  // namespace krmx

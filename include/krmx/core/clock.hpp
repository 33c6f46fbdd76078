#pragma once
// Time comes from an injectable clock, never from a hidden one: tests drive a ManualClock.

#include <chrono>
#include <concepts>

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
        requires(!std::same_as<C, ClockRef>)
    ClockRef(const C& clock) noexcept  // NOLINT(google-explicit-constructor): any clock converts
        : object_(&clock), now_([](const void* c) -> TimePoint { return static_cast<const C*>(c)->now(); }) {}

    [[nodiscard]] TimePoint now() const { return now_(object_); }

private:
    static const SteadyClock& default_clock() noexcept {
        static constexpr SteadyClock clock;
        return clock;
    }
    const void* object_;
    TimePoint (*now_)(const void*);
};

}  // namespace krmx

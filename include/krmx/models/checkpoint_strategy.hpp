#pragma once
// When a read model saves a checkpoint. A strategy is a small value; the runner asks it after every event
// and at the end of a catch-up. Time comes from an injectable clock (tests use krmx::ManualClock).
//
// Whatever the strategy, a failure keeps the last checkpoint that was saved: the events after it are
// processed again by the next run (at-least-once). Make projections idempotent, or keep them in the same
// transaction as the checkpoint (SqliteProjection) so that they move together.

#include <cstdint>
#include <string>

#include "krmx/core/clock.hpp"

namespace krmx {

class CheckpointStrategy {
  public:
    enum class Kind : std::uint8_t { manual, at_end, after_every_event, every_n_events, every_interval };

    /// Only when the runner's `checkpoint()` is called.
    [[nodiscard]] static CheckpointStrategy manual() noexcept { return {Kind::manual, 0, {}, {}}; }
    /// Once, when a catch-up reaches the end of the store (and when a live run stops).
    [[nodiscard]] static CheckpointStrategy at_end() noexcept { return {Kind::at_end, 0, {}, {}}; }
    /// After every event: the shortest replay, the most writes.
    [[nodiscard]] static CheckpointStrategy after_every_event() noexcept {
        return {Kind::after_every_event, 1, {}, {}};
    }
    /// After every `n` events, and at the end.
    [[nodiscard]] static CheckpointStrategy every_n_events(std::uint64_t n) noexcept {
        return {Kind::every_n_events, n == 0 ? 1 : n, {}, {}};
    }
    /// After an event once `interval` has passed since the last checkpoint, and at the end.
    [[nodiscard]] static CheckpointStrategy every(Duration interval, ClockRef clock = {}) noexcept {
        return {Kind::every_interval, 0, interval, clock};
    }

    [[nodiscard]] Kind kind() const noexcept { return kind_; }

    /// Asked after each processed event.
    [[nodiscard]] bool after_event(std::uint64_t events_since_checkpoint, TimePoint last_checkpoint) const {
        switch (kind_) {
            case Kind::after_every_event:
                return true;
            case Kind::every_n_events:
                return events_since_checkpoint >= every_;
            case Kind::every_interval:
                return clock_.now() - last_checkpoint >= interval_;
            case Kind::manual:
            case Kind::at_end:
                return false;
        }
        return false;
    }
    /// Asked when a catch-up reaches the end of the store or a run stops, with events not yet checkpointed.
    [[nodiscard]] bool at_end_of_run() const noexcept { return kind_ != Kind::manual; }
    [[nodiscard]] TimePoint now() const { return clock_.now(); }

    [[nodiscard]] std::string describe() const {
        switch (kind_) {
            case Kind::manual:
                return "manual";
            case Kind::at_end:
                return "at end";
            case Kind::after_every_event:
                return "after every event";
            case Kind::every_n_events:
                return "every " + std::to_string(every_) + " events";
            case Kind::every_interval:
                return "every " +
                       std::to_string(
                           std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count()) +
                       " ms";
        }
        return "?";
    }

  private:
    CheckpointStrategy(Kind kind, std::uint64_t every, Duration interval, ClockRef clock) noexcept
        : kind_(kind), every_(every), interval_(interval), clock_(clock) {}
    Kind kind_;
    std::uint64_t every_;
    Duration interval_;
    ClockRef clock_;
};

}  // namespace krmx

#pragma once
// How the PostgreSQL event store cuts a read into windows of positions (pure arithmetic, no libpq).
//
// Reads go in windows of positions, not `position > after ORDER BY position LIMIT n`: the planner cannot
// know that positions are dense, and on a table without fresh statistics chose a bitmap scan of everything
// after `after` plus a sort (300 ms for a batch of 4096 out of a million, not 3 ms). Without a filter the
// next n events are exactly the positions up to after + n, and a window that comes back short has reached
// the end. With one, windows grow until they hold enough matches or reach a head below which nothing is
// missing (`up_to`).

#include <algorithm>
#include <cstddef>

#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// A window of positions (after, to] and at most `limit` of its events that pass the filter.
struct PgWindow {
    Position after = 0;
    Position to = 0;
    std::size_t limit = 0;
};

/// The windows of one read up to `up_to`, at most `chunk` events each.
class PgWindowPlan {
  public:
    PgWindowPlan(Position up_to, std::size_t chunk, bool filtered)
        : up_to_(up_to),
          chunk_(std::max<std::size_t>(chunk, 1)),
          filtered_(filtered),
          width_(filtered ? 4096 : 0) {}

    // The window starting after `from` for a read that wants `remaining` more events (`from < up_to`).
    [[nodiscard]] PgWindow at(Position from, std::size_t remaining) {
        const std::size_t wanted = std::min(remaining, chunk_);
        width_ = filtered_ ? std::max<Position>(width_, wanted) : wanted;
        const Position to = width_ < up_to_ - from ? from + width_ : up_to_;
        return PgWindow{from, to, filtered_ ? wanted : static_cast<std::size_t>(to - from)};
    }

    // Where a read stands after `window` gave `count` events, the last at `last`: the last when the
    // limit cut the window short (or without a filter), otherwise its end (nothing else in it matched).
    [[nodiscard]] Position covered(const PgWindow& window, std::size_t count, Position last) const {
        if (count == window.limit || !filtered_) return count == 0 ? window.after : last;
        return window.to;
    }

    // Whether another window follows; a filtered window that was not full makes the next one wider.
    [[nodiscard]] bool more(const PgWindow& window, std::size_t count, Position covered,
                            std::size_t remaining) {
        if (filtered_ && count < window.limit) width_ = std::min<Position>(width_ * 2, Position{1} << 20);
        return remaining > 0 && covered < up_to_ && (filtered_ || count == window.limit);
    }

  private:
    Position up_to_;
    std::size_t chunk_;
    bool filtered_;
    Position width_;
};

}  // namespace krmx::detail

#pragma once
// The commit state machine of a durable domain. Accepted events wait in order for their commit; one batch
// is in flight at a time, and the events accepted while it is go together in the next one; a batch whose
// commit completes at once (synchronous commits) is followed by the next at once. Nobody hears of an event
// before its commit succeeded. A failed commit fails its whole batch; the events that waited behind it were
// validated on top of it, so they go back to the domain to be judged again.
//
// It knows nothing of the domain's state or messages: its Owner builds each batch, tells everyone when a
// batch is stored, and takes events back when it is not.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "krmx/core/clock.hpp"
#include "krmx/sync/durability.hpp"

namespace krmx::detail {

class CommitPipeline {
  public:
    /// An accepted event waiting for its commit: what its sender must be told.
    struct Waiting {
        std::optional<std::uint64_t> id;
        bool from_user = false;  // server code's events have nobody to tell when they are taken back
        std::optional<TimePoint> received = {};  // when its append arrived, if someone measures latency
    };

    class Owner {
      public:
        virtual ~Owner() = default;
        /// Hand events [first, first + count) to the journal; `done` says how it ended.
        virtual void commit(std::size_t first, std::size_t count, CommitDone done) = 0;
        /// `batch` (events from `first` on) is stored: tell everyone.
        virtual void committed(std::size_t first, std::span<const Waiting> batch) = 0;
        /// Storing `batch` (events from `first` on) failed with `error`: take back it and every event after
        /// it, tell its senders, and dispatch `behind` (the events that waited after it, in order) again.
        virtual void failed(std::size_t first, std::span<const Waiting> batch, std::vector<Waiting> behind,
                            const std::string& error) = 0;

      protected:
        Owner() = default;
        Owner(const Owner&) = default;
        Owner& operator=(const Owner&) = default;
    };

    /// `committed`: how many of the domain's events are stored already (restored ones).
    CommitPipeline(Owner& owner, std::size_t committed) : owner_(owner), committed_(committed) {}
    CommitPipeline(const CommitPipeline&) = delete;
    CommitPipeline& operator=(const CommitPipeline&) = delete;

    /// Events stored: everything before the waiting ones.
    [[nodiscard]] std::size_t committed() const noexcept { return committed_; }
    /// Events that wait for their commit, the batch in flight included.
    [[nodiscard]] std::size_t uncommitted() const noexcept { return waiting_.size(); }
    [[nodiscard]] bool committing() const noexcept { return in_flight_ > 0; }
    [[nodiscard]] std::uint64_t commits() const noexcept { return commits_; }
    [[nodiscard]] std::uint64_t failed_commits() const noexcept { return failed_commits_; }

    /// The event after the waiting ones was accepted: it waits for the next commit (started at once when
    /// none is in flight).
    void add(Waiting waiting) {
        waiting_.push_back(waiting);
        start();
    }

  private:
    // Hands every waiting event to the owner as one batch; again as long as commits complete at once.
    void start() {
        while (in_flight_ == 0 && !waiting_.empty() && !judging_again_) {
            in_flight_ = waiting_.size();
            const std::uint64_t serial = ++serial_;
            completed_at_once_.reset();
            in_commit_ = true;
            CommitDone done = [this, alive = std::weak_ptr<int>(alive_), serial](std::optional<std::string> error) {
                if (alive.expired() || in_flight_ == 0 || serial != serial_) return;
                if (in_commit_) {
                    if (!completed_at_once_) completed_at_once_ = std::move(error);
                    return;
                }
                finish(std::move(error));
                start();
            };
            try {
                owner_.commit(committed_, in_flight_, std::move(done));
            } catch (const std::exception& e) {
                if (!completed_at_once_) completed_at_once_ = std::optional<std::string>{e.what()};
            } catch (...) {
                if (!completed_at_once_) completed_at_once_ = std::optional<std::string>{"the commit failed"};
            }
            in_commit_ = false;
            if (!completed_at_once_) return;  // in flight: `done` comes later
            auto error = std::move(*completed_at_once_);
            completed_at_once_.reset();
            finish(std::move(error));
        }
    }

    void finish(std::optional<std::string> error) {
        const std::size_t count = in_flight_;
        in_flight_ = 0;
        const std::size_t first = committed_;
        std::vector<Waiting> batch(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(count));
        if (!error) {
            ++commits_;
            committed_ += count;
            waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(count));
            owner_.committed(first, batch);
            return;
        }
        ++failed_commits_;
        std::vector<Waiting> behind(waiting_.begin() + static_cast<std::ptrdiff_t>(count), waiting_.end());
        waiting_.clear();
        // The events behind are judged again and come back through add(): one batch after that, not one each.
        judging_again_ = true;
        try {
            owner_.failed(first, batch, std::move(behind), *error);
        } catch (...) {
            judging_again_ = false;
            throw;
        }
        judging_again_ = false;
    }

    Owner& owner_;
    std::size_t committed_;
    std::deque<Waiting> waiting_;  // the batch in flight first, then the events accepted after it
    std::size_t in_flight_ = 0;
    std::uint64_t serial_ = 0;
    bool in_commit_ = false;
    bool judging_again_ = false;
    std::optional<std::optional<std::string>> completed_at_once_;
    std::uint64_t commits_ = 0;
    std::uint64_t failed_commits_ = 0;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // lets a late `done` see the domain is gone
};

}  // namespace krmx::detail

#pragma once
// For durability tests: a store wrapper that counts appends, can hold them at a gate and can fail one on
// purpose, and a journal of one's own whose commits go to a function (krmx::Durability's extension point).
// The mailbox that plays the application's event loop is in tests/support/mailbox.hpp.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <krmx/store/event_store.hpp>
#include <krmx/sync/durability.hpp>

#include "mailbox.hpp"

namespace krmx::testing {

/// Durability whose commits go to a function (which must call `done`, now or later, or throw), and whose
/// restore loads `stored`.
class CallbackJournal {
  public:
    using Commit = std::function<void(std::span<const CommitEvent>, CommitDone)>;
    explicit CallbackJournal(Commit commit) : commit_(std::move(commit)) {}

    [[nodiscard]] Durability durability() {
        return Durability{[this](std::string_view, const EventLoop&) -> std::unique_ptr<DomainJournal> {
            return std::make_unique<Journal>(*this);
        }};
    }
    std::vector<RecordedEvent> stored;

  private:
    struct Journal final : DomainJournal {
        explicit Journal(CallbackJournal& owner) : owner(owner) {}
        void restore(const std::function<void(RecordedEvent&)>& load) override {
            for (auto record : owner.stored) load(record);
        }
        void commit(std::span<const CommitEvent> batch, CommitDone done) override {
            owner.commit_(batch, std::move(done));
        }
        CallbackJournal& owner;
    };
    Commit commit_;
};

/// A real store with instruments on its appends: a count, the size of each, a gate (appends wait until
/// the test lets one through) and one injected failure (nothing is written then); and failing reads.
template <class Store>
class InstrumentedStore {
  public:
    explicit InstrumentedStore(Store& store) : store_(store) {}

    AppendResult append(std::string_view stream, ExpectedRevision expected,
                        std::span<const NewEvent> events) {
        std::unique_lock lock{mutex_};
        ++waiting_;
        changed_.notify_all();
        changed_.wait(lock, [this] { return !gated_ || permits_ > 0; });
        --waiting_;
        if (gated_) --permits_;
        append_sizes_.push_back(events.size());
        if (fail_next_) {
            const std::string why = *std::exchange(fail_next_, std::nullopt);
            changed_.notify_all();
            throw StoreError(why);
        }
        lock.unlock();
        auto result = store_.append(stream, expected, events);
        changed_.notify_all();
        return result;
    }
    AppendResult append(std::string_view stream, ExpectedRevision expected, const NewEvent& event) {
        return append(stream, expected, std::span<const NewEvent>{&event, 1});
    }
    std::vector<RecordedEvent> read_stream(std::string_view stream, Revision from = 0,
                                           std::size_t max_count = read_unbounded) const {
        {
            std::lock_guard lock{mutex_};
            if (failing_reads_ > 0) {
                --failing_reads_;
                throw StoreError("injected read failure");
            }
        }
        return store_.read_stream(stream, from, max_count);
    }
    std::vector<RecordedEvent> read_all(Position after = 0, std::size_t max_count = read_unbounded,
                                        const EventFilter& filter = {}) const {
        return store_.read_all(after, max_count, filter);
    }
    std::optional<Revision> stream_revision(std::string_view stream) const {
        return store_.stream_revision(stream);
    }
    Position head_position() const { return store_.head_position(); }
    Subscription subscribe(SubscribeFrom from, SubscriptionHandlers handlers,
                           const EventFilter& filter = {}) {
        return store_.subscribe(from, std::move(handlers), filter);
    }

    /// Appends wait from now on until let through.
    void close_gate() {
        std::lock_guard lock{mutex_};
        gated_ = true;
        permits_ = 0;
    }
    /// Lets `n` appends through (gate stays closed after them).
    void let_through(std::size_t n) {
        {
            std::lock_guard lock{mutex_};
            permits_ += n;
        }
        changed_.notify_all();
    }
    void open_gate() {
        {
            std::lock_guard lock{mutex_};
            gated_ = false;
        }
        changed_.notify_all();
    }
    /// Waits until an append is held at the gate; false after `limit`.
    bool wait_for_held(std::chrono::milliseconds limit) {
        std::unique_lock lock{mutex_};
        return changed_.wait_for(lock, limit, [this] { return waiting_ > 0; });
    }
    /// The next append that passes the gate fails with `why`.
    void fail_next(std::string why) {
        std::lock_guard lock{mutex_};
        fail_next_ = std::move(why);
    }
    /// The next `n` reads of a stream fail (a store that is briefly unreachable).
    void fail_reads(std::size_t n) {
        std::lock_guard lock{mutex_};
        failing_reads_ = n;
    }
    /// Sizes of the appends tried so far (failed ones included), in order.
    std::vector<std::size_t> append_sizes() const {
        std::lock_guard lock{mutex_};
        return append_sizes_;
    }

  private:
    Store& store_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool gated_ = false;
    std::size_t permits_ = 0;
    std::size_t waiting_ = 0;
    std::optional<std::string> fail_next_;
    mutable std::size_t failing_reads_ = 0;
    std::vector<std::size_t> append_sizes_;
};

}  // namespace krmx::testing

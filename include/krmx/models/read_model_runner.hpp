#pragma once
// The runner of a read model: feeds a ReadModel (read_model.hpp) from an event store.
//
// Run modes:
// - `catch_up()`: from where the model is (its checkpoint, or the start) to the end of the store, then stop;
// - `follow(stop_token)`: catch up, then apply live events until the token is stopped;
// - `restore_only()`: load the last checkpoint (or the initial state) and read nothing.
// Each run starts where the runner's last run left off, or, for the first run and after a failed one, from
// the checkpoint it restores (or from the first event).
//
// Checkpoints (`use_checkpoints(storage, strategy)`): state and position saved together under the model's
// name and event filter (krmx::checkpoint_key: runners of one model with different filters keep separate
// checkpoints), with the version "<model>@<revision>/<catalog>@<revision>". A checkpoint of another
// version is discarded and the model replays from the start; whenever a model starts from the first event,
// its `on_reset` hook clears what it keeps outside its state, in the checkpoint's transaction. Delivery is
// at-least-once: when a run fails (the reducer throws, a checkpoint cannot be saved, the store fails), the
// runner forgets its in-memory progress, and the next run restores the last good checkpoint and processes
// the events after it again. Side effects outside the state must therefore be idempotent, or move in the
// same transaction as the checkpoint (SqliteProjection).
//
// Threads: only `follow` uses one (the store's subscription thread applies live events). State and
// position may be read from any thread (`state()`, `position()`); runs of one runner never overlap.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/models/checkpoint_strategy.hpp"
#include "krmx/models/read_model.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

/// A state that checkpoints: converted to and from JSON by nlohmann/json.
template <class S>
concept CheckpointableState = requires(const S& s, const nlohmann::json& j) {
    nlohmann::json(s);
    j.template get<S>();
};

/// What one run did.
struct [[nodiscard]] RunReport {
    Position position = 0;              ///< the last event processed (0: none)
    bool restored = false;              ///< the run started after the checkpoint it loaded
    bool resumed = false;               ///< the run went on from the state the runner's last run left
    bool discarded_checkpoint = false;  ///< a checkpoint of another version was thrown away
    std::uint64_t events = 0;           ///< events applied
    std::uint64_t ignored = 0;          ///< events the model has no handler for
    std::uint64_t unknown = 0;          ///< events of types outside the catalog
    std::uint64_t invalid = 0;          ///< events that did not decode
    std::uint64_t refused = 0;          ///< events the model's handlers refused
    std::uint64_t checkpoints = 0;      ///< checkpoints saved
};

namespace detail {

// A checkpoint store behind three functions, plus the transaction hooks of projections that keep their
// rows in the checkpoint's transaction (SqliteProjection: `begin_batch()` and `abort_batch()`).
struct CheckpointTarget {
    std::function<std::optional<Checkpoint>(std::string_view)> load;
    std::function<void(std::string_view, const Checkpoint&)> save;
    std::function<bool(std::string_view)> erase;
    std::function<void()> begin_batch;
    std::function<void()> abort_batch;
};

template <class C>
CheckpointTarget checkpoint_target(C& storage) {
    CheckpointTarget target;
    target.load = [&storage](std::string_view key) {
        return storage.load(key);
    };
    target.save = [&storage](std::string_view key, const Checkpoint& cp) {
        storage.save(key, cp);
    };
    target.erase = [&storage](std::string_view key) {
        return storage.erase(key);
    };
    if constexpr (requires {
                      storage.begin_batch();
                      storage.abort_batch();
                  }) {
        target.begin_batch = [&storage] {
            storage.begin_batch();
        };
        target.abort_batch = [&storage] {
            storage.abort_batch();
        };
    }
    return target;
}

}  // namespace detail

/// Runs a ReadModel against an EventStore. Not copyable; keep it alive while a run is in progress.
template <class State, EventStore Store>
class ReadModelRunner {
  public:
    ReadModelRunner(ReadModel<State> model, Store& store)
        : model_(std::move(model)),
          key_(krmx::checkpoint_key(model_.name(), model_.event_filter())),
          store_(&store),
          state_(model_.initial_state()) {}
    ReadModelRunner(const ReadModelRunner&) = delete;
    ReadModelRunner& operator=(const ReadModelRunner&) = delete;

    /// Saves checkpoints in `storage` (a CheckpointStore: a SqliteProjection or a PostgresProjection too) as
    /// `strategy` says.
    template <CheckpointStore C>
    ReadModelRunner& use_checkpoints(C& storage, CheckpointStrategy strategy = CheckpointStrategy::at_end()) {
        static_assert(CheckpointableState<State>,
                      "krmx::ReadModelRunner::use_checkpoints: the state must convert to and from "
                      "nlohmann::json (ADL to_json/from_json or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE)");
        target_ = detail::checkpoint_target(storage);
        strategy_ = strategy;
        encode_ = [](const State& s) {
            return nlohmann::json(s);
        };
        decode_ = [](const nlohmann::json& j) {
            return j.template get<State>();
        };
        return *this;
    }

    /// Catches up to the end of the store and stops.
    RunReport catch_up() {
        return run([this](RunReport& report) { read_to_end(report); });
    }

    /// Catches up, then applies live events until `stop` is requested. Rethrows what failed the model.
    RunReport follow(std::stop_token stop) {
        return run([this, &stop](RunReport& report) {
            read_to_end(report);
            follow_live(stop, report);
        });
    }

    /// Loads the last checkpoint (or the initial state) and reads no event; a runner that ran before keeps
    /// the state its last run left (`resumed`).
    RunReport restore_only() {
        return run([this](RunReport& report) { start(report); });
    }

    /// Saves a checkpoint of the current state and position now (the `manual` strategy's trigger).
    /// Returns false when no checkpoint storage is configured.
    bool checkpoint() {
        std::lock_guard lock{mutex_};
        if (!target_.save) return false;
        RunReport ignored;
        save_checkpoint(ignored);
        return true;
    }

    /// A copy of the current state (safe while `follow` runs on another thread).
    [[nodiscard]] State state() const {
        std::lock_guard lock{mutex_};
        return state_;
    }
    /// Calls `f(const State&)` under the runner's lock, without a copy.
    template <class F>
    decltype(auto) with_state(F&& f) const {
        std::lock_guard lock{mutex_};
        return std::forward<F>(f)(std::as_const(state_));
    }
    /// The last event processed (0: none).
    [[nodiscard]] Position position() const {
        std::lock_guard lock{mutex_};
        return position_;
    }
    [[nodiscard]] const ReadModel<State>& model() const noexcept { return model_; }
    /// The key of this runner's checkpoint: the model's name and filter (see krmx::checkpoint_key).
    [[nodiscard]] const std::string& checkpoint_key() const noexcept { return key_; }
    /// Failed runs whose open batch could not be rolled back (a projection's rows written since the last
    /// checkpoint): the run throws its own error, and the rollback's failure shows here.
    [[nodiscard]] std::uint64_t failed_rollbacks() const noexcept { return failed_rollbacks_.load(); }

  private:
    // Runs of one runner never overlap: the state has one writer.
    struct RunGuard {
        explicit RunGuard(ReadModelRunner& r) : runner(r) {
            if (runner.running_.exchange(true)) {
                throw std::logic_error("krmx::ReadModelRunner '" + runner.model_.name() +
                                       "': a run is already in progress");
            }
        }
        RunGuard(const RunGuard&) = delete;
        RunGuard& operator=(const RunGuard&) = delete;
        ~RunGuard() { runner.running_.store(false); }
        ReadModelRunner& runner;
    };

    // Every run goes through here: one at a time, and whatever fails it fails the model (see fail()) on its
    // way out to the caller.
    template <class Body>
    RunReport run(Body&& body) {
        RunGuard guard{*this};
        RunReport report;
        try {
            std::forward<Body>(body)(report);
        } catch (...) {
            fail();
            throw;
        }
        return report;
    }

    // From where the model is to the end of the store.
    void read_to_end(RunReport& report) {
        start(report);
        read_to_head(report);
        finish_catch_up(report);
    }

    // After a catch-up: applies live events on the store's subscription thread until `stop`, or rethrows
    // what failed them.
    void follow_live(const std::stop_token& stop, RunReport& report) {
        std::exception_ptr error;
        std::mutex wait_mutex;
        std::condition_variable_any wake;
        bool failed = false;
        const auto on_failure = [&](std::exception_ptr e) {
            {
                std::lock_guard lock{wait_mutex};
                // The first failure is rethrown; a later one follows from it.
                if (!error) error = std::move(e);
                failed = true;
            }
            wake.notify_all();
        };
        Subscription subscription;
        {
            std::lock_guard lock{mutex_};
            SubscriptionHandlers handlers;
            handlers.on_event = [this, &report, on_failure](const RecordedEvent& record) {
                if (record.position <= position_) return;  // seen during catch-up
                try {
                    process(RecordedEvent{record}, report);
                } catch (...) {
                    on_failure(std::current_exception());
                    throw;  // ends the subscription
                }
            };
            handlers.on_error = [on_failure](std::exception_ptr e) {
                on_failure(std::move(e));
            };
            subscription = store_->subscribe(SubscribeFrom::after(position_), std::move(handlers),
                                             model_.event_filter());
        }
        {
            std::unique_lock lock{wait_mutex};
            wake.wait(lock, stop, [&] { return failed; });
        }
        subscription.cancel();  // returns once no callback runs any more
        if (error) std::rethrow_exception(error);
        std::lock_guard lock{mutex_};
        if (events_since_checkpoint_ > 0 && target_.save && strategy_.at_end_of_run())
            save_checkpoint(report);
    }

    void signal(ModelSignal::Kind kind, Position position, const RecordedEvent* record = nullptr,
                std::string_view reason = {}) {
        if (const auto& handler = model_.signal_handler())
            handler(state_, ModelSignal{kind, position, record, reason});
    }

    // Goes on from the last run's state, or restores the checkpoint, or starts from the first event; and
    // signals which.
    void start(RunReport& report) {
        std::lock_guard lock{mutex_};
        const bool resuming = started_;
        if (!started_) {
            state_ = model_.initial_state();
            position_ = 0;
            events_since_checkpoint_ = 0;
            if (target_.load) {
                if (auto cp = target_.load(key_)) {
                    if (cp->version == model_.version()) {
                        try {
                            state_ = decode_(cp->state);
                            position_ = cp->position;
                        } catch (const std::exception&) {
                            // A checkpoint that no longer reads as the state: replay instead.
                            state_ = model_.initial_state();
                            position_ = 0;
                            report.discarded_checkpoint = true;
                        }
                    } else {
                        report.discarded_checkpoint = true;
                    }
                }
            }
            if (position_ == 0) {
                start_over(report.discarded_checkpoint);
            }
            started_ = true;
            last_checkpoint_time_ = strategy_.now();
        }
        report.position = position_;
        if (resuming) {
            report.resumed = true;
            signal(ModelSignal::Kind::resumed, position_);
        } else if (position_ > 0) {
            report.restored = true;
            signal(ModelSignal::Kind::restored, position_);
        } else {
            signal(ModelSignal::Kind::from_start, 0);
        }
    }

    // From the first event, with the initial state: whatever the model keeps outside its state is stale.
    // The reset hook clears it, and the checkpoint is reset with it, in the storage's transaction when it
    // has one (SqliteProjection): a crash leaves the old rows with the old checkpoint, or neither.
    void start_over(bool discarded_checkpoint) {
        if (const auto& reset = model_.reset_hook()) {
            if (target_.begin_batch) target_.begin_batch();
            reset();
            if (target_.save) target_.save(key_, Checkpoint{encode_(state_), 0, model_.version()});
        } else if (discarded_checkpoint) {
            (void)target_.erase(key_);
        }
    }

    // Streams every event after the model's position to the end of the store (krmx::for_each_event: one
    // batch in memory at a time, and PostgreSQL produces the next while this one is applied).
    void read_to_head(RunReport& report) {
        // The head first: every event up to it is read, so what did not pass the filter is behind us too.
        const Position head = store_->head_position();
        (void)for_each_event(
            *store_, position(),
            [&](RecordedEvent& record) {
                std::lock_guard lock{mutex_};
                process_locked(std::move(record), report);
            },
            model_.event_filter());
        std::lock_guard lock{mutex_};
        if (head > position_) position_ = head;
    }

    void finish_catch_up(RunReport& report) {
        std::lock_guard lock{mutex_};
        if (events_since_checkpoint_ > 0 && target_.save && strategy_.at_end_of_run())
            save_checkpoint(report);
        report.position = position_;
        signal(ModelSignal::Kind::caught_up, position_);
    }

    void process(RecordedEvent record, RunReport& report) {
        std::lock_guard lock{mutex_};
        process_locked(std::move(record), report);
    }

    void process_locked(RecordedEvent record, RunReport& report) {
        if (record.position <= position_) return;
        if (target_.begin_batch) target_.begin_batch();
        const Position position = record.position;
        auto decoded = model_.catalog().decode(std::move(record));
        if (!decoded.decoded()) {
            const bool unknown = decoded.status == DecodeStatus::unknown_type;
            ++(unknown ? report.unknown : report.invalid);
            signal(unknown ? ModelSignal::Kind::unknown_event : ModelSignal::Kind::invalid_event, position,
                   &decoded.event.record(), decoded.reason);
        } else if (model_.reducer()) {
            std::string reason;
            switch (model_.reducer()(state_, decoded.event, reason)) {
                case Applied::applied:
                    ++report.events;
                    break;
                case Applied::ignored:
                    ++report.ignored;
                    break;
                case Applied::refused:
                    ++report.refused;
                    signal(ModelSignal::Kind::refused_event, position, &decoded.event.record(), reason);
                    break;
            }
        } else {
            ++report.ignored;
        }
        position_ = position;
        report.position = position;
        ++events_since_checkpoint_;
        if (target_.save && strategy_.after_event(events_since_checkpoint_, last_checkpoint_time_)) {
            save_checkpoint(report);
        }
    }

    void save_checkpoint(RunReport& report) {
        target_.save(key_, Checkpoint{encode_(state_), position_, model_.version()});
        events_since_checkpoint_ = 0;
        last_checkpoint_time_ = strategy_.now();
        ++report.checkpoints;
    }

    // The state may be half-way through an event, or ahead of the last checkpoint: forget it, so that the
    // next run restores the last good checkpoint (at-least-once).
    void fail() noexcept {
        std::lock_guard lock{mutex_};
        if (target_.abort_batch) {
            try {
                target_.abort_batch();
            } catch (...) {
                failed_rollbacks_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        started_ = false;
    }

    ReadModel<State> model_;
    std::string key_;
    Store* store_;
    mutable std::mutex mutex_;
    State state_;
    Position position_ = 0;
    bool started_ = false;
    std::atomic<bool> running_{false};
    std::atomic<std::uint64_t> failed_rollbacks_{0};
    detail::CheckpointTarget target_;
    CheckpointStrategy strategy_ = CheckpointStrategy::at_end();
    std::function<nlohmann::json(const State&)> encode_;
    std::function<State(const nlohmann::json&)> decode_;
    std::uint64_t events_since_checkpoint_ = 0;
    TimePoint last_checkpoint_time_{};
};

}  // namespace krmx

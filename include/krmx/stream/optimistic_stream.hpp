#pragma once
// OptimisticStream<State>: the client's view of a stream. The local user's events are applied at once
// (optimistically) and wait in a pending queue until the server confirms them, invalidates them, or they
// expire. Two states are kept:
//   confirmed state   the authoritative log as far as this client has received it
//   optimistic state  confirmed state + the pending events replayed in order; `state()` returns it
//
// Cost model (K = pending events, S = size of the state; "application" = one guard + handler call):
//   local dispatch                       1 application (on the optimistic state), O(1) queue push
//   confirm own oldest pending event     1 application (on the confirmed state); no copy, no replay:
//                                        confirmed + pending is the same sequence before and after
//   foreign event (or an own event that  1 application + rebuild; rebuild = copy of the confirmed state
//     cannot take the path above)        + replay of the K pending events
//   foreign event with nothing pending   2 applications (confirmed and optimistic), no copy
//   invalidate / expiry / flush          rebuild; free when the dropped event was skipped anyway
//   touching the stream with nothing     one clock read when something is pending, O(1) otherwise
//     expired
// Tests pin these down through counters(), not timings.
//
// Semantics, and why:
// - Matching a server event to a pending one: only events whose dispatcher is user() can match. With an
//   id, the pending entry with that id matches (ids are per client, so another user's echoed id must not
//   match). Without one, the oldest pending entry with an equal event (same type, equal payload) matches,
//   so several identical pending events are confirmed one at a time, oldest first.
// - A pending event that no longer applies during a rebuild (its handler refuses on the new confirmed
//   state) is skipped in the optimistic state (`PendingEvent::applies == false`) but stays pending:
//   only the server decides whether it happened. It is replayed again at every rebuild.
// - A server event that this client's model refuses (unknown type, payload that does not fit, handler
//   refusal: the models have diverged, or a handler is not deterministic) must not be silently eaten:
//   it is counted in counters().divergent and returned as the refusal from receive(), with the reason
//   prefixed "diverged from the server: ". Its position is consumed all the same (the server's log is
//   authoritative; staying behind would refuse every later event as out of order) and a matching own
//   pending event leaves the queue (the server has decided it). The confirmed state then lacks that
//   event; the sync layer should resynchronise (reset + history).
// - Ids start at 1 and increase per stream; reset() does not restart them, so a late echo from before a
//   reset can never match a newer entry.
// - Expiry: a pending event expires once it is older than optimistic_seconds (now > deadline). Expired
//   events are dropped on flush_expired() and at the start of every other mutating call; reading
//   (state(), pending()) never expires anything, so drive flush_expired() from a timer (next_deadline()
//   says when). They are reported through on_invalidated with the reason "expired after <n> s".
//   optimistic_seconds <= 0 (or NaN) expires an event at the first touch after time moves; >= 1e9 never.
// - flush() and reset() report every dropped event through on_invalidated too ("flushed", "reset"), so
//   a UI that tracks ids by that signal never keeps a "sending..." forever. set_user() with another name
//   drops the pending events ("user changed"): they were dispatched as someone else.
// - Notifications, after the state is consistent: on_invalidated for each dropped event (oldest first),
//   then on_confirmed_change if the confirmed state changed, then on_change if the optimistic state may
//   have changed. A confirmation of the own oldest event changes the confirmed state only. Any change to
//   pending() comes with at least one of the three signals.
// - A handler that refuses after writing (see stream_model.hpp) is undone: on the optimistic state by a
//   rebuild, on the confirmed state (only a divergent server event can do that) by replaying the confirmed
//   log from the initial state, or from the state restore_confirmed_at() put there (counters().rollbacks).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/stream/detail/decode.hpp"
#include "krmx/stream/log.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

struct OptimisticOptions {
    /// How long a pending event waits for the server before it is dropped.
    double optimistic_seconds = 10.0;
};

/// Work counters, for tests that pin down costs by counting rather than timing. Never reset.
struct OptimisticCounters {
    std::uint64_t handler_calls = 0;       ///< handler applications on either state, replays included
    std::uint64_t rebuilds = 0;            ///< optimistic state rebuilt from the confirmed state + pending
    std::uint64_t replayed_events = 0;     ///< applications made by rebuilds
    std::uint64_t confirmed_in_place = 0;  ///< own oldest events confirmed with one application, no rebuild
    std::uint64_t divergent = 0;           ///< server events this client's model refused
    std::uint64_t expired = 0;             ///< pending events dropped by expiry
    std::uint64_t rollbacks = 0;  ///< confirmed state replayed from its log (after a divergent event)
};

/// One pending event, as pending() shows it.
struct PendingEvent {
    std::uint64_t id;
    nlohmann::json event;  ///< wire form {"type","payload"?}
    TimePoint deadline;    ///< expires once the clock is past this
    bool applies;          ///< false when skipped in the optimistic state (its handler refuses there)
};

/// The answer to a local dispatch: the local verdict, and what to send when accepted.
struct [[nodiscard]] OptimisticDispatch {
    DispatchResult result;            ///< position() is tentative: confirmed_size() + pending index
    std::optional<std::uint64_t> id;  ///< set iff accepted locally (and queued)
    nlohmann::json event;             ///< wire form to send; a refused event must not be sent
    explicit operator bool() const noexcept { return id.has_value(); }
};

namespace detail {

struct PendingEntry {
    std::uint64_t id;
    std::uint32_t type_index;
    PayloadBox payload;
    TimePoint deadline;
    bool applies;
};

// A dropped pending event waiting to be reported. `reason` points at a literal, a member of the stream
// or the caller's argument, all alive until the report is made within the same call.
struct DroppedEvent {
    std::uint64_t id;
    std::uint32_t type_index;
    PayloadBox payload;
    std::string_view reason;
};

// What one public call changed, so that it rebuilds at most once and notifies after the fact.
struct OptimisticChanges {
    std::vector<DroppedEvent> dropped;
    std::optional<TimePoint> now;
    bool needs_rebuild = false;
    bool optimistic_changed = false;
    bool confirmed_changed = false;
};

inline constexpr double never_expire_seconds = 1e9;

inline Duration optimistic_window(double seconds) {
    if (!(seconds > 0)) return Duration::zero();  // also NaN
    if (seconds >= never_expire_seconds) return Duration::max();
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

inline std::string expiry_reason(double seconds) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "expired after %g s", seconds > 0 ? seconds : 0.0);
    return buffer;
}

}  // namespace detail

template <class State>
class OptimisticStream {
  public:
    using state_type = State;

    explicit OptimisticStream(const StreamModel<State>& model, OptimisticOptions options = {},
                              ClockRef clock = {})
        : model_(model.data()),
          options_(options),
          window_(detail::optimistic_window(options.optimistic_seconds)),
          expiry_reason_(detail::expiry_reason(options.optimistic_seconds)),
          clock_(clock),
          confirmed_(model_->initial),
          optimistic_(model_->initial),
          log_(model_) {}

    /// The local dispatcher: its events are the ones that can be pending. Changing it drops the pending
    /// events (reported as "user changed"); they were dispatched as someone else.
    void set_user(std::string username) {
        if (username == user_) return;
        detail::OptimisticChanges changes;
        drop_all(changes, "user changed");
        user_ = std::move(username);
        settle(changes);
    }
    [[nodiscard]] const std::string& user() const noexcept { return user_; }

    /// Dispatches a typed event by the local user: applied to the optimistic state at once and queued,
    /// or refused locally (then not queued, and not to be sent).
    template <class P>
    OptimisticDispatch dispatch(const TypedEvent<P>& event) {
        const auto index = model_->find(event.key, event.type);
        if (!index) [[unlikely]]
            return refuse_local(detail::unknown_type(event.type), event.to_json());
        if (model_->handlers[*index]->ops != &detail::payload_ops<P>) [[unlikely]] {
            // Same name, other C++ payload type: convert through JSON, which also explains a misfit.
            return dispatch(event.to_json());
        }
        return dispatch_decoded(*index, detail::PayloadBox::make(event.payload),
                                [&] { return event.to_json(); });
    }

    /// Dispatches an event in its JSON form `{"type":..., "payload"?:...}`.
    OptimisticDispatch dispatch(const nlohmann::json& event) {
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event(*model_, event, decoded); !result) {
            return refuse_local(std::move(result), event);
        }
        return dispatch_decoded(decoded.index, std::move(decoded.payload), [&] { return event; });
    }

    /// An event the server accepted at `position` (0-based; must equal confirmed_size(), otherwise it is
    /// refused as `malformed` and nothing changes). `id` is the local user's id when the server echoes it.
    DispatchResult receive(std::string_view dispatcher, const nlohmann::json& event, std::size_t position,
                           std::optional<std::uint64_t> id = std::nullopt) {
        if (position != confirmed_size_) return out_of_order(position);
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event(*model_, event, decoded); !result) {
            return receive_undecodable(dispatcher, std::move(result), id);
        }
        return receive_decoded(dispatcher, std::move(decoded), position, id);
    }

    /// The same for a typed event (in-process servers, tests).
    template <class P>
    DispatchResult receive(std::string_view dispatcher, const TypedEvent<P>& event, std::size_t position,
                           std::optional<std::uint64_t> id = std::nullopt) {
        if (position != confirmed_size_) return out_of_order(position);
        const auto index = model_->find(event.key, event.type);
        if (!index || model_->handlers[*index]->ops != &detail::payload_ops<P>) [[unlikely]] {
            return receive(dispatcher, event.to_json(), position, id);
        }
        return receive_decoded(
            dispatcher, detail::DecodedEvent{*index, detail::PayloadBox::make(event.payload)}, position, id);
    }

    /// The same for an event given as JSON text, as it arrives on a socket (only the payload is parsed).
    DispatchResult receive_text(std::string_view dispatcher, std::string_view event_text,
                                std::size_t position, std::optional<std::uint64_t> id = std::nullopt) {
        if (position != confirmed_size_) return out_of_order(position);
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event_text(*model_, event_text, scratch_, decoded); !result) {
            return receive_undecodable(dispatcher, std::move(result), id);
        }
        return receive_decoded(dispatcher, std::move(decoded), position, id);
    }

    /// The server refused pending event `id`: drop it, rebuild, report `reason` to on_invalidated.
    /// Returns false when no such event is pending (confirmed, expired or dropped already).
    bool invalidate(std::uint64_t id, std::string_view reason) {
        detail::OptimisticChanges changes;
        const auto at = find_id(id);
        if (at) drop_at(changes, *at, reason);
        collect_expired(changes);
        settle(changes);
        return at.has_value();
    }

    /// Drops the pending events whose deadline has passed; returns how many.
    std::size_t flush_expired() {
        detail::OptimisticChanges changes;
        collect_expired(changes);
        const std::size_t dropped = changes.dropped.size();
        settle(changes);
        return dropped;
    }

    /// Drops every pending event (reported as "flushed"); the optimistic state becomes the confirmed one.
    void flush() {
        detail::OptimisticChanges changes;
        drop_all(changes, "flushed");
        settle(changes);
    }

    /// Back to the model's initial state with nothing confirmed and nothing pending (pending events are
    /// reported as "reset"). Ids keep increasing. Done on the client's own link and unlink.
    void reset() {
        detail::OptimisticChanges changes;
        drop_all(changes, "reset");
        changes.needs_rebuild = false;
        confirmed_ = model_->initial;
        optimistic_ = model_->initial;
        log_.clear();
        floor_.reset();
        confirmed_size_ = 0;
        changes.confirmed_changed = true;
        changes.optimistic_changed = true;
        settle(changes);
    }

    /// The confirmed state becomes `state`, the server's state after its first `position` events (a
    /// snapshot): nothing confirmed is held, the next server event must have `position`, and the pending
    /// events stay, replayed on top of it. Roll backs of the confirmed state start from `state` from now on
    /// (the events before `position` are not here to replay). Notifies as a rebuild does.
    void restore_confirmed_at(State state, std::size_t position) {
        detail::OptimisticChanges changes;
        collect_expired(changes);  // a touch like any other
        log_.clear_at(position);
        floor_ = state;
        confirmed_ = std::move(state);
        confirmed_size_ = position;
        changes.needs_rebuild = true;
        changes.confirmed_changed = true;
        settle(changes);
    }

    /// The optimistic state: confirmed state + pending events.
    [[nodiscard]] const State& state() const noexcept { return optimistic_; }
    [[nodiscard]] const State& confirmed_state() const noexcept { return confirmed_; }
    /// Server events received, which is also the position the next one must have.
    [[nodiscard]] std::size_t confirmed_size() const noexcept { return confirmed_size_; }
    /// The events applied to the confirmed state, in order. Equal to the server's log unless
    /// counters().divergent > 0.
    [[nodiscard]] const Log& confirmed_log() const noexcept { return log_; }

    /// The pending queue, oldest first, for UIs that show "sending...".
    [[nodiscard]] std::vector<PendingEvent> pending() const {
        std::vector<PendingEvent> out;
        out.reserve(pending_.size());
        for (const auto& e : pending_)
            out.push_back({e.id, wire_form(e.type_index, e.payload), e.deadline, e.applies});
        return out;
    }
    [[nodiscard]] std::size_t pending_count() const noexcept { return pending_.size(); }
    [[nodiscard]] bool has_pending(std::uint64_t id) const { return find_id(id).has_value(); }
    /// When flush_expired() will next have something to do (nothing when nothing is pending). May be
    /// early, never late.
    [[nodiscard]] std::optional<TimePoint> next_deadline() const noexcept {
        if (pending_.empty()) return std::nullopt;
        return earliest_deadline_;
    }

    [[nodiscard]] const OptimisticOptions& options() const noexcept { return options_; }
    [[nodiscard]] const typename StreamModel<State>::Data& model() const noexcept { return *model_; }
    [[nodiscard]] const OptimisticCounters& counters() const noexcept { return counters_; }
    /// How many times a subscriber threw (the stream and the other subscribers carried on).
    [[nodiscard]] std::uint64_t subscriber_errors() const noexcept {
        return on_change_.errors() + on_confirmed_change_.errors() + on_invalidated_.errors();
    }

    /// `f(const State&)` after the optimistic state may have changed.
    template <class F>
    Subscription on_change(F&& f) {
        return on_change_.connect(std::forward<F>(f));
    }
    /// `f(const State&)` after the confirmed state changed.
    template <class F>
    Subscription on_confirmed_change(F&& f) {
        return on_confirmed_change_.connect(std::forward<F>(f));
    }
    /// `f(std::uint64_t id, const nlohmann::json& event, std::string_view reason)` for every pending event
    /// dropped without confirmation: invalidated, expired, flushed, reset, user changed.
    template <class F>
    Subscription on_invalidated(F&& f) {
        return on_invalidated_.connect(std::forward<F>(f));
    }

  private:
    using Changes = detail::OptimisticChanges;

    [[nodiscard]] const detail::Handler<State>& handler(std::uint32_t index) const {
        return *model_->handlers[index];
    }

    [[nodiscard]] nlohmann::json wire_form(std::uint32_t type_index,
                                           const detail::PayloadBox& payload) const {
        nlohmann::json j = nlohmann::json::object();
        j["type"] = model_->names[type_index];
        if (payload.ops()->has_payload) j["payload"] = payload.to_json();
        return j;
    }

    [[nodiscard]] TimePoint now(Changes& changes) const {
        if (!changes.now) changes.now = clock_.now();
        return *changes.now;
    }

    [[nodiscard]] TimePoint deadline_from(TimePoint now) const noexcept {
        if (window_ == Duration::max() || now > TimePoint::max() - window_) return TimePoint::max();
        return now + window_;
    }

    // Pending ids increase along the queue: binary search.
    [[nodiscard]] std::optional<std::size_t> find_id(std::uint64_t id) const {
        const auto it =
            std::lower_bound(pending_.begin(), pending_.end(), id,
                             [](const detail::PendingEntry& e, std::uint64_t v) { return e.id < v; });
        if (it == pending_.end() || it->id != id) return std::nullopt;
        return static_cast<std::size_t>(it - pending_.begin());
    }

    // Removes pending entry `at` and queues its report. A skipped entry changed nothing: no rebuild.
    void drop_at(Changes& changes, std::size_t at, std::string_view reason) {
        auto& e = pending_[at];
        if (e.applies) changes.needs_rebuild = true;
        changes.dropped.push_back({e.id, e.type_index, std::move(e.payload), reason});
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(at));
    }

    void drop_all(Changes& changes, std::string_view reason) {
        for (auto& e : pending_) {
            if (e.applies) changes.needs_rebuild = true;
            changes.dropped.push_back({e.id, e.type_index, std::move(e.payload), reason});
        }
        pending_.clear();
    }

    // Drops every entry past its deadline. Deadlines only grow along the queue while the clock does not
    // go back, but a full scan (only when the earliest deadline has passed) stays right if it does.
    void collect_expired(Changes& changes) {
        if (pending_.empty()) return;
        const TimePoint t = now(changes);
        if (!(t > earliest_deadline_)) return;
        TimePoint earliest = TimePoint::max();
        std::size_t kept = 0;
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            auto& e = pending_[i];
            if (t > e.deadline) {
                ++counters_.expired;
                if (e.applies) changes.needs_rebuild = true;
                changes.dropped.push_back({e.id, e.type_index, std::move(e.payload), expiry_reason_});
            } else {
                earliest = std::min(earliest, e.deadline);
                if (kept != i) pending_[kept] = std::move(e);
                ++kept;
            }
        }
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(kept), pending_.end());
        earliest_deadline_ = earliest;
    }

    // Rebuilds whatever is stale, then notifies (see "Notifications" at the top).
    void settle(Changes& changes) {
        if (changes.needs_rebuild) {
            rebuild();
            changes.needs_rebuild = false;
            changes.optimistic_changed = true;
        }
        if (!on_invalidated_.empty()) {
            for (const auto& d : changes.dropped)
                on_invalidated_.emit(d.id, wire_form(d.type_index, d.payload), d.reason);
        }
        if (changes.confirmed_changed && !on_confirmed_change_.empty()) on_confirmed_change_.emit(confirmed_);
        if (changes.optimistic_changed && !on_change_.empty()) on_change_.emit(optimistic_);
    }

    // optimistic = confirmed + the pending events that apply, in order; recomputes `applies`.
    void rebuild() {
        ++counters_.rebuilds;
        optimistic_ = confirmed_;  // copy-assign: reuses the optimistic state's allocations
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            auto& e = pending_[i];
            ++counters_.handler_calls;
            ++counters_.replayed_events;
            auto status = handler(e.type_index)(optimistic_, user_, e.payload.get());
            e.applies = status.outcome == Outcome::accepted;
            if (!e.applies && status.written) replay_prefix(i);
        }
    }

    // Undoes a refused handler's writes: confirmed + the applying entries before `end`.
    void replay_prefix(std::size_t end) {
        optimistic_ = confirmed_;
        for (std::size_t i = 0; i < end; ++i) {
            const auto& e = pending_[i];
            if (!e.applies) continue;
            ++counters_.handler_calls;
            ++counters_.replayed_events;
            auto status = handler(e.type_index)(optimistic_, user_, e.payload.get());
            if (status.outcome != Outcome::accepted) {
                throw ModelError("krmx::OptimisticStream: replaying pending event " + std::to_string(e.id) +
                                 " failed (" + status.reason.str() + "); handlers must be deterministic");
            }
        }
    }

    // Undoes a divergent server event's writes on the confirmed state: the held log replayed on the state at
    // its base (the snapshot restored there, or the initial state).
    void roll_back_confirmed() {
        ++counters_.rollbacks;
        State rebuilt = floor_ ? *floor_ : model_->initial;
        for (std::size_t i = log_.base(); i < log_.size(); ++i) {
            const auto& record = log_.record(i);
            ++counters_.handler_calls;
            auto status = handler(record.type_index)(rebuilt, log_.dispatcher_name(record.dispatcher),
                                                     record.payload.get());
            if (status.outcome != Outcome::accepted) {
                throw ModelError("krmx::OptimisticStream: replaying confirmed event " + std::to_string(i) +
                                 " failed (" + status.reason.str() + "); handlers must be deterministic");
            }
        }
        confirmed_ = std::move(rebuilt);
    }

    OptimisticDispatch refuse_local(DispatchResult result, nlohmann::json event) {
        Changes changes;
        collect_expired(changes);  // a touch all the same
        settle(changes);
        return {std::move(result), std::nullopt, std::move(event)};
    }

    template <class MakeWire>
    OptimisticDispatch dispatch_decoded(std::uint32_t index, detail::PayloadBox&& payload,
                                        MakeWire&& make_wire) {
        Changes changes;
        collect_expired(changes);
        if (changes.needs_rebuild) {  // the new event must land on an up-to-date optimistic state
            rebuild();
            changes.needs_rebuild = false;
            changes.optimistic_changed = true;
        }
        ++counters_.handler_calls;
        auto status = handler(index)(optimistic_, user_, payload.get());
        if (status.outcome != Outcome::accepted) [[unlikely]] {
            changes.needs_rebuild = status.written;  // undo its writes
            settle(changes);
            return {DispatchResult{status.outcome, std::move(status.reason)}, std::nullopt, make_wire()};
        }
        const std::uint64_t id = next_id_++;
        const TimePoint deadline = deadline_from(now(changes));
        pending_.push_back(detail::PendingEntry{id, index, std::move(payload), deadline, true});
        if (pending_.size() == 1 || deadline < earliest_deadline_) earliest_deadline_ = deadline;
        changes.optimistic_changed = true;
        OptimisticDispatch out{DispatchResult::accepted_at(confirmed_size_ + pending_.size() - 1), id,
                               make_wire()};
        settle(changes);
        return out;
    }

    DispatchResult out_of_order(std::size_t position) const {
        return {Outcome::malformed,
                Reason{"out of order: expected position " + std::to_string(confirmed_size_) + ", got " +
                       std::to_string(position)}};
    }

    // The own pending entry a server event stands for, if any (see "Matching" at the top).
    [[nodiscard]] std::optional<std::size_t> match(std::string_view dispatcher,
                                                   const detail::DecodedEvent* event,
                                                   std::optional<std::uint64_t> id) const {
        if (pending_.empty() || dispatcher != user_) return std::nullopt;
        if (id)
            return pending_.front().id == *id ? std::optional<std::size_t>{0}
                                              : find_id(*id);  // in order: O(1)
        if (!event) return std::nullopt;
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            if (same_event(pending_[i], *event)) return i;
        }
        return std::nullopt;
    }

    [[nodiscard]] static bool same_event(const detail::PendingEntry& e, const detail::DecodedEvent& event) {
        return e.type_index == event.index && e.payload.equals(event.payload);
    }

    DispatchResult diverged(Changes& changes, std::optional<std::size_t> matched, DispatchResult refusal) {
        ++counters_.divergent;
        ++confirmed_size_;
        if (matched) {
            // The server decided: the entry leaves the queue, without an invalidation report.
            if (pending_[*matched].applies) changes.needs_rebuild = true;
            pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(*matched));
        }
        settle(changes);
        return {refusal.outcome(), Reason{"diverged from the server: " + std::string{refusal.reason()}}};
    }

    DispatchResult receive_undecodable(std::string_view dispatcher, DispatchResult refusal,
                                       std::optional<std::uint64_t> id) {
        Changes changes;
        collect_expired(changes);
        const auto matched = match(dispatcher, nullptr, id);
        return diverged(changes, matched, std::move(refusal));
    }

    DispatchResult receive_decoded(std::string_view dispatcher, detail::DecodedEvent&& event,
                                   std::size_t position, std::optional<std::uint64_t> id) {
        Changes changes;
        collect_expired(changes);
        const auto matched = match(dispatcher, &event, id);

        ++counters_.handler_calls;
        auto status = handler(event.index)(confirmed_, dispatcher, event.payload.get());
        if (status.outcome != Outcome::accepted) [[unlikely]] {
            if (status.written) roll_back_confirmed();  // same value as before: no notification
            return diverged(changes, matched, DispatchResult{status.outcome, std::move(status.reason)});
        }
        ++confirmed_size_;
        changes.confirmed_changed = true;

        if (matched && *matched == 0 && !changes.needs_rebuild && pending_.front().applies &&
            (!id || same_event(pending_.front(), event))) {
            // The own oldest event, already in the optimistic state right after the confirmed part:
            // confirmed + pending is the same sequence as before, so the optimistic state stands as is.
            log_.append(event.index, dispatcher, std::move(pending_.front().payload));
            pending_.pop_front();
            ++counters_.confirmed_in_place;
            settle(changes);
            return DispatchResult::accepted_at(position);
        }

        log_.append(event.index, dispatcher, std::move(event.payload));
        if (matched) {
            pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(*matched));
            changes.needs_rebuild = true;
        } else if (pending_.empty() && !changes.needs_rebuild) {
            // optimistic == confirmed before the event: apply it there too instead of copying the state.
            const auto& record = log_.record(log_.size() - 1);
            ++counters_.handler_calls;
            auto again = handler(event.index)(optimistic_, dispatcher, record.payload.get());
            if (again.outcome != Outcome::accepted) changes.needs_rebuild = true;  // not deterministic
            changes.optimistic_changed = true;
        } else {
            changes.needs_rebuild = true;
        }
        settle(changes);
        return DispatchResult::accepted_at(position);
    }

    std::shared_ptr<const typename StreamModel<State>::Data> model_;
    OptimisticOptions options_;
    Duration window_;
    std::string expiry_reason_;
    ClockRef clock_;
    std::string user_;
    State confirmed_;
    State optimistic_;
    Log log_;
    std::optional<State> floor_;  // the confirmed state at log_.base() when restored there (a snapshot)
    std::size_t confirmed_size_ = 0;
    std::deque<detail::PendingEntry> pending_;
    TimePoint earliest_deadline_ = TimePoint::max();  // <= every pending deadline
    std::uint64_t next_id_ = 1;
    OptimisticCounters counters_;
    std::vector<detail::JsonMember> scratch_;
    detail::Signal<const State&> on_change_;
    detail::Signal<const State&> on_confirmed_change_;
    detail::Signal<std::uint64_t, const nlohmann::json&, std::string_view> on_invalidated_;
};

}  // namespace krmx

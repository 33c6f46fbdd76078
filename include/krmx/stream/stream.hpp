#pragma once
// Stream<State>: the authoritative, append-only stream a server runs. Each event is validated, applied
// and recorded; a refused event changes nothing and notifies nobody.
//
// Cost model: an accepted typed event costs one handler call and one 48-byte log append; no JSON.
// A refusal costs what its handler form says (see stream_model.hpp): nothing beyond the guard or the
// exception when the stream knows the state was not written; otherwise a roll back (a copy of the last
// known-good state + a replay of the events since), after which that copy moves to the present.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/stream/detail/decode.hpp"
#include "krmx/stream/log.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

/// The dispatcher name servers use for their own events.
inline constexpr std::string_view server_dispatcher = "<server>";

/// Work counters, for tests that pin down costs by counting rather than timing.
struct StreamCounters {
    std::uint64_t handler_calls = 0;    ///< handler applications, replays included
    std::uint64_t rollbacks = 0;        ///< states rolled back after a refusal that may have written
    std::uint64_t replayed_events = 0;  ///< events re-applied by roll backs
};

template <class State>
class Stream {
  public:
    using state_type = State;

    explicit Stream(const StreamModel<State>& model) : Stream(model.data()) {}
    explicit Stream(std::shared_ptr<const typename StreamModel<State>::Data> model)
        : model_(std::move(model)), state_(model_->initial), log_(model_) {}

    /// Dispatches a typed event: `stream.dispatch("alice", counter::increment(3))`.
    template <class P>
    DispatchResult dispatch(std::string_view dispatcher, const TypedEvent<P>& event) {
        const auto index = model_->find(event.key, event.type);
        if (!index) [[unlikely]]
            return detail::unknown_type(event.type);
        const auto& handler = *model_->handlers[*index];
        if (handler.ops != &detail::payload_ops<P>) [[unlikely]] {
            // Same name, other C++ payload type: convert through JSON, which also explains a misfit.
            return dispatch(dispatcher, event.to_json());
        }
        return apply_and_record(*index, handler, dispatcher, &event.payload, event.payload);
    }

    /// Dispatches an event in its JSON form `{"type":..., "payload"?:...}`, as received from the wire.
    DispatchResult dispatch(std::string_view dispatcher, const nlohmann::json& event) {
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event(*model_, event, decoded); !result) return result;
        return apply_decoded(dispatcher, std::move(decoded));
    }

    /// Dispatches an event given as JSON text, as it arrives on a socket. Text that is not exactly one
    /// JSON object is `malformed`. Only the payload is parsed into a DOM.
    DispatchResult dispatch_text(std::string_view dispatcher, std::string_view event_text) {
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event_text(*model_, event_text, scratch_, decoded); !result)
            return result;
        return apply_decoded(dispatcher, std::move(decoded));
    }

    /// Dispatches an event that was read already: its raw text and its scanned members, as a krmx::Message
    /// hands on a `stream/append`'s event (Message::members_of). Nothing is read twice.
    DispatchResult dispatch_scanned(std::string_view dispatcher, std::string_view event_text,
                                    std::span<const detail::JsonMember> members) {
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_members(*model_, event_text, members, decoded); !result) return result;
        return apply_decoded(dispatcher, std::move(decoded));
    }

    /// Dispatches an event given as its type name and payload (nullptr: none), as stored records hold it
    /// (krmx::RecordedEvent): replaying a store needs no `{"type","payload"}` envelope.
    DispatchResult dispatch(std::string_view dispatcher, std::string_view type,
                            const nlohmann::json* payload) {
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_named(*model_, type, payload, decoded); !result) return result;
        return apply_decoded(dispatcher, std::move(decoded));
    }

    [[nodiscard]] const State& state() const noexcept { return state_; }
    [[nodiscard]] const Log& log() const noexcept { return log_; }
    /// The number of accepted events, which is also the position the next one will get.
    [[nodiscard]] std::size_t size() const noexcept { return log_.size(); }
    [[nodiscard]] const typename StreamModel<State>::Data& model() const noexcept { return *model_; }
    /// The model, shared: for another stream of it.
    [[nodiscard]] const std::shared_ptr<const typename StreamModel<State>::Data>& model_handle() const noexcept {
        return model_;
    }

    /// The state after the first `position` events, rebuilt from the state at the log's base by replaying
    /// the held events before `position`. Throws std::out_of_range when `position` is not held (before the
    /// base, past the end), krmx::ModelError when a replay is refused (handlers that are not deterministic).
    [[nodiscard]] State state_at(std::size_t position) const {
        if (position < log_.base() || position > log_.size()) {
            throw std::out_of_range("krmx::Stream::state_at: position " + std::to_string(position) +
                                    " is not held (" + std::to_string(log_.base()) + " to " +
                                    std::to_string(log_.size()) + ")");
        }
        if (position == log_.size()) return state_;
        State state = floor_ ? *floor_ : model_->initial;
        replay(state, log_.base(), position);
        return state;
    }
    [[nodiscard]] const StreamCounters& counters() const noexcept { return counters_; }
    /// How many times a subscriber threw (the stream and the other subscribers carried on).
    [[nodiscard]] std::uint64_t subscriber_errors() const noexcept {
        return on_change_.errors() + on_event_.errors();
    }

    /// Back to the model's initial state with an empty log. Notifies `on_change`.
    void reset() {
        state_ = model_->initial;
        log_.clear();
        floor_.reset();
        known_good_.reset();
        known_good_position_ = 0;
        on_change_.emit(state_);
    }

    /// Starts over from `state`, the state after the first `position` events (a snapshot): the log is
    /// empty and its next event gets `position`. Notifies `on_change`.
    void restore_at(State state, std::size_t position) {
        log_.clear_at(position);
        floor_ = state;
        state_ = std::move(state);
        known_good_.reset();
        known_good_position_ = position;
        on_change_.emit(state_);
    }

    /// Lets go of the events before `position`, whose state `state_at_position` is (a copy the caller
    /// took when the stream stood there): roll backs and take backs start from it, and the log holds
    /// only the events after it. Throws std::out_of_range when `position` is not held.
    void forget_before(std::size_t position, State state_at_position) {
        if (position < log_.base() || position > log_.size()) {
            throw std::out_of_range("krmx::Stream::forget_before: position " + std::to_string(position) +
                                    " is not held (" + std::to_string(log_.base()) + " to " +
                                    std::to_string(log_.size()) + ")");
        }
        floor_ = std::move(state_at_position);
        if (known_good_position_ <= position) {
            known_good_.reset();
            known_good_position_ = position;
        }
        log_.forget_before(position);
    }

    /// Takes back every event from position `size` on (events a durable domain could not store): the state
    /// becomes the state after the first `size` events, rebuilt from the last known-good state by replay,
    /// and is known-good from then on, so that the next take back replays only what came after it. Nothing
    /// is copied while events are accepted. Notifies `on_change`. Throws std::out_of_range when `size` is
    /// past the end or before the held events.
    void take_back(std::size_t size) {
        if (size > log_.size() || size < log_.base()) {
            throw std::out_of_range("krmx::Stream::take_back: " + std::to_string(size) + " is not held (" +
                                    std::to_string(log_.base()) + " to " + std::to_string(log_.size()) + ")");
        }
        while (log_.size() > size) log_.pop_back();
        if (known_good_position_ > size) {
            known_good_.reset();
            known_good_position_ = log_.base();
        }
        roll_back();
        on_change_.emit(state_);
    }

    /// `f(const State&)` after every change of state (accepted event, reset, take_back).
    template <class F>
    Subscription on_change(F&& f) {
        return on_change_.connect(std::forward<F>(f));
    }
    /// `f(const State&, const LogEntry&)` once per accepted event, in order.
    template <class F>
    Subscription on_event(F&& f) {
        return on_event_.connect(std::forward<F>(f));
    }

  private:
    // `record` is what goes into the log: the typed payload itself, or a PayloadBox holding it.
    template <class Record>
    DispatchResult apply_and_record(std::uint32_t index, const detail::Handler<State>& handler,
                                    std::string_view dispatcher, const void* payload, Record&& record) {
        ++counters_.handler_calls;
        auto status = handler(state_, dispatcher, payload);
        if (status.outcome != Outcome::accepted) [[unlikely]] {
            if (status.written) roll_back();
            return {status.outcome, std::move(status.reason)};
        }
        try {
            log_.append(index, dispatcher, std::forward<Record>(record));
        } catch (...) {
            roll_back();  // the state moved on but the log could not: bring the state back to the log
            throw;
        }
        const std::size_t position = log_.size() - 1;
        if (!on_event_.empty()) on_event_.emit(state_, log_[position]);
        if (!on_change_.empty()) on_change_.emit(state_);
        return DispatchResult::accepted_at(position);
    }

    DispatchResult apply_decoded(std::string_view dispatcher, detail::DecodedEvent&& decoded) {
        const auto& handler = *model_->handlers[decoded.index];
        return apply_and_record(decoded.index, handler, dispatcher, decoded.payload.get(),
                                std::move(decoded.payload));
    }

    // Rebuilds the state from the last known-good state (or the state at the log's base: the floor, or the
    // initial state) and the log since.
    void roll_back() {
        ++counters_.rollbacks;
        State rebuilt = known_good_ ? *known_good_ : (floor_ ? *floor_ : model_->initial);
        replay(rebuilt, known_good_position_, log_.size());
        counters_.handler_calls += log_.size() - known_good_position_;
        counters_.replayed_events += log_.size() - known_good_position_;
        state_ = std::move(rebuilt);
        known_good_ = state_;
        known_good_position_ = log_.size();
    }

    // Applies the held events [from, to) to `state`.
    void replay(State& state, std::size_t from, std::size_t to) const {
        for (std::size_t i = from; i < to; ++i) {
            const auto& record = log_.record(i);
            const auto& handler = *model_->handlers[record.type_index];
            auto status = handler(state, log_.dispatcher_name(record.dispatcher), record.payload.get());
            if (status.outcome != Outcome::accepted) {
                throw ModelError("krmx::Stream: replaying accepted event " + std::to_string(i) + " ('" +
                                 std::string{log_.type_name(record.type_index)} + "') failed (" +
                                 status.reason.str() + "); handlers must be deterministic");
            }
        }
    }

    std::shared_ptr<const typename StreamModel<State>::Data> model_;
    State state_;
    Log log_;
    std::optional<State> floor_;       // the state at the log's base, when events were forgotten before it
    std::optional<State> known_good_;  // a later state the log reached, to roll back to (none: the floor)
    std::size_t known_good_position_ = 0;
    StreamCounters counters_;
    detail::Signal<const State&> on_change_;
    detail::Signal<const State&, const LogEntry&> on_event_;
    std::vector<detail::JsonMember> scratch_;
};

}  // namespace krmx

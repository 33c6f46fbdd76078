#pragma once
// The determinism check of the test tools: the events a stream accepted, replayed from the model's initial
// state, must give the state the stream holds. Twice: straight (catches handlers that read clocks, random
// numbers or globals), and with the state rebuilt from its own JSON before each event, as a restore from a
// snapshot would (catches handlers that depend on what the JSON does not hold: the iteration order of an
// unordered container, a cache, a pointer). The second needs to_json and from_json.

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "krmx/stream/detail/decode.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/testing/detail/describe.hpp"
#include "krmx/testing/dispatched.hpp"

namespace krmx::testing::detail {

/// What is wrong with replaying `events` (all accepted before) to `expected`; empty when nothing is.
/// `also(expected, replayed)` compares more (what each player of a ProjectionModel sees), "" when equal.
template <class State>
std::string replay_problem(const StreamModel<State>& model, std::span<const Dispatched> events,
                           const State& expected, bool through_json = true,
                           const std::function<std::string(const std::type_identity_t<State>&,
                                                           const std::type_identity_t<State>&)>& also = {}) {
    const auto differs = [&](const State& replayed) -> std::string {
        if (const auto d = difference(expected, replayed); d && !d->empty()) return *d;
        return also ? also(expected, replayed) : std::string{};
    };
    Stream<State> straight{model};
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto result = straight.dispatch(events[i].dispatcher, events[i].event);
        if (!result) {
            return "replaying accepted event #" + std::to_string(i) + " (" + to_string(events[i]) +
                   ") was refused: " + std::string{result.reason()} +
                   "; handlers must be deterministic (no clocks, random numbers or globals)";
        }
    }
    if (const auto d = differs(straight.state()); !d.empty()) {
        return "replaying the same " + std::to_string(events.size()) +
               " events from the initial state gave another state; handlers must be deterministic (no "
               "clocks, random numbers or globals). First difference, expected (live) against replayed: " +
               d;
    }
    if constexpr (has_from_json<State>) {
        if (!through_json) return {};
        const auto& data = *model.data();
        State state = model.initial_state();
        for (std::size_t i = 0; i < events.size(); ++i) {
            try {
                state = nlohmann::json(state).template get<State>();
            } catch (const std::exception& e) {
                return "the state does not survive its own JSON (to_json, then from_json) before event #" +
                       std::to_string(i) + ": " + e.what();
            }
            krmx::detail::DecodedEvent decoded;
            if (auto r = krmx::detail::decode_event(data, events[i].event, decoded); !r) {
                return "event #" + std::to_string(i) + " does not decode on replay: " + std::string{r.reason()};
            }
            const auto status = (*data.handlers[decoded.index])(state, events[i].dispatcher, decoded.payload.get());
            if (status.outcome != Outcome::accepted) {
                return "replaying accepted event #" + std::to_string(i) + " (" + to_string(events[i]) +
                       ") on the state rebuilt from its JSON was refused: " + status.reason.str() +
                       "; the handlers depend on something the state's JSON does not hold (the iteration "
                       "order of an unordered container, a cache, a pointer)";
            }
        }
        if (const auto d = differs(state); !d.empty()) {
            return "replaying the events on the state rebuilt from its JSON before each one (as a restore "
                   "from a snapshot would) gave another state; the handlers depend on something the state's "
                   "JSON does not hold (the iteration order of an unordered container, a cache, a pointer). "
                   "First difference, expected (live) against replayed: " +
                   d;
        }
    } else {
        (void)through_json;
    }
    return {};
}

}  // namespace krmx::testing::detail

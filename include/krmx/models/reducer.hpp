#pragma once
// How read and write models fold decoded events into their state. Two sources, one shape:
// - a plain function over (State, CatalogEvent), as in lager: `(State&, const CatalogEvent&)`,
//   `(const State&, const CatalogEvent&) -> State`, or `(const CatalogEvent&)` for a model with side effects
//   only; anything it throws is a failure of the model;
// - the handlers of a `StreamModel<State>` (the same object the game server and clients run): the stored
//   event goes to the handler registered for its type; a guard's refusal is reported as a refusal (the state
//   is unchanged) and a type the model does not handle is ignored.

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/models/event_catalog.hpp"
#include "krmx/stream/detail/decode.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

/// The state of a model that keeps nothing in memory (its handler writes elsewhere). Checkpoints as `{}`.
struct NoState {
    friend bool operator==(NoState, NoState) noexcept { return true; }
};
inline void to_json(nlohmann::json& j, const NoState&) {
    j = nlohmann::json::object();
}
inline void from_json(const nlohmann::json&, NoState&) {}

/// What folding one event did.
enum class Applied : std::uint8_t {
    applied,  ///< the state took the event
    ignored,  ///< the model has no handler for the event's type
    refused,  ///< a StreamModel guard refused it; the state is unchanged
};

namespace detail {

template <class State>
using Reducer = std::function<Applied(State&, const CatalogEvent&, std::string& reason)>;

template <class F, class State>
constexpr bool check_reducer() {
    constexpr bool ok = std::invocable<F&, State&, const CatalogEvent&> ||
                        std::invocable<F&, const State&, const CatalogEvent&> ||
                        std::invocable<F&, const CatalogEvent&>;
    static_assert(ok,
                  "krmx: a reducer must be callable as one of\n"
                  "  (State&, const krmx::CatalogEvent&)               change the state in place\n"
                  "  (const State&, const krmx::CatalogEvent&) -> State  return the next state\n"
                  "  (const krmx::CatalogEvent&)                       side effects only (a projection)");
    if constexpr (!std::invocable<F&, State&, const CatalogEvent&> &&
                  std::invocable<F&, const State&, const CatalogEvent&>) {
        static_assert(std::convertible_to<std::invoke_result_t<F&, const State&, const CatalogEvent&>, State>,
                      "krmx: a reducer taking `const State&` must return the next State");
    }
    return ok;
}

template <class State, class F>
Reducer<State> make_reducer(F f) {
    static_assert(check_reducer<F, State>());
    return [f = std::move(f)](State& state, const CatalogEvent& event, std::string&) mutable -> Applied {
        if constexpr (std::invocable<F&, State&, const CatalogEvent&>) {
            using R = std::invoke_result_t<F&, State&, const CatalogEvent&>;
            if constexpr (std::is_void_v<R>) {
                std::invoke(f, state, event);
            } else {
                state = std::invoke(f, state, event);
            }
        } else if constexpr (std::invocable<F&, const State&, const CatalogEvent&>) {
            state = std::invoke(f, std::as_const(state), event);
        } else {
            std::invoke(f, event);
        }
        return Applied::applied;
    };
}

/// Applies a decoded event through a StreamModel's handlers. A refusal after the handler may have written
/// cannot be undone without a copy of the state, so it is a failure (ModelError), never a silent half-write.
template <class State>
Applied apply_with_model(const ModelData<State>& model, State& state, std::string_view type,
                         std::string_view dispatcher, const PayloadBox& payload,
                         const nlohmann::json* payload_json, std::string& reason) {
    const auto index = model.find_name(type);
    if (!index) return Applied::ignored;
    const auto& handler = *model.handlers[*index];
    ApplyStatus status;
    if (handler.ops == payload.ops()) {
        status = handler(state, dispatcher, payload.get());
    } else {
        // The catalog and the model hold different C++ payload types under one name: convert via JSON.
        DecodedEvent decoded;
        const nlohmann::json json = payload_json != nullptr ? *payload_json : payload.to_json();
        const bool has = payload.ops() != nullptr && payload.ops()->has_payload;
        if (auto result = decode_payload(model, *index, type, has ? &json : nullptr, decoded); !result) {
            reason = std::string{result.reason()};
            return Applied::refused;
        }
        status = handler(state, dispatcher, decoded.payload.get());
    }
    if (status.outcome == Outcome::accepted) return Applied::applied;
    if (status.written) {
        throw ModelError("krmx: the handler for '" + std::string{type} +
                         "' refused after changing the state (" + status.reason.str() +
                         "); the state cannot be trusted any more");
    }
    reason = status.reason.str();
    return Applied::refused;
}

template <class State>
Reducer<State> reducer_from_model(const StreamModel<State>& model) {
    return [data = model.data()](State& state, const CatalogEvent& event, std::string& reason) {
        return apply_with_model(*data, state, event.type(), event.dispatcher(), event.payload_box(), nullptr,
                                reason);
    };
}

}  // namespace detail
}  // namespace krmx

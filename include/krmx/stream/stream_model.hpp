#pragma once
// StreamModel<State>: an initial state and one typed handler per event type. The same model object
// serves the authoritative Stream (server), the OptimisticStream (client), replays of stored logs and
// write models. Game code is written once.
//
// Handler forms, and what a refusal costs (N = events since the last roll back, S = size of the state):
//
//   form                                                 refused before writing   refused after writing
//   guard (const State&, dispatcher, payload) -> Verdict  no exception, no copy    -
//     (or -> bool, or -> void and throw krmx::Rejected)  one exception, no copy
//   (Draft<State>&, dispatcher, payload)                 one exception, no copy   roll back: copy S + replay N
//   (const State&, dispatcher, payload) -> State         one exception, no copy   - (cannot write)
//   (State&, dispatcher, payload) [-> State]             roll back: copy S + replay N (the stream cannot
//                                                         know whether the handler wrote before throwing)
//
// Prefer a guard for refusals: players and cheaters send invalid events all the time. Events without
// payload (EventType<>) take handlers without the payload parameter: (State&, dispatcher).
// Handlers must be deterministic (no clocks, no randomness, no I/O): they are replayed.
// Name the state type in the handler's parameter list; `auto&` makes the form ambiguous.
//
// Sharing a model across translation units: EventTypes are constexpr and always safe. A model held
// in an `inline const` variable is initialised dynamically; if it may be used during static
// initialisation of another translation unit, return it from a function instead:
//   inline const krmx::StreamModel<Counter>& model() { static const auto m = ...; return m; }

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/detail/short_equal.hpp"
#include "krmx/core/event.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/snapshot_state.hpp"
#include "krmx/stream/draft.hpp"

namespace krmx {

/// Thrown when a model is used in a way that can never work (a type registered twice, a replay of an
/// accepted event that now fails because a handler is not deterministic).
struct ModelError : std::logic_error {
    using std::logic_error::logic_error;
};

namespace detail {

struct NoGuard {};

// What one handler application did.
struct ApplyStatus {
    Outcome outcome = Outcome::accepted;
    bool written = false;  // the state may have been changed (only meaningful when not accepted)
    Reason reason;
};

template <class F, class S, class P>
concept handler_callable = (std::same_as<P, NoPayload> && std::invocable<const F&, S, std::string_view>) ||
                           (!std::same_as<P, NoPayload> &&
                            std::invocable<const F&, S, std::string_view, const P&>);

template <class F, class S, class P>
decltype(auto) call_handler(const F& f, S&& state, std::string_view dispatcher, const P& payload) {
    if constexpr (std::same_as<P, NoPayload>) {
        (void)payload;
        return std::invoke(f, std::forward<S>(state), dispatcher);
    } else {
        return std::invoke(f, std::forward<S>(state), dispatcher, payload);
    }
}

template <class F, class S, class P>
using handler_result_t = decltype(call_handler(std::declval<const F&>(), std::declval<S>(),
                                               std::declval<std::string_view>(), std::declval<const P&>()));

template <class State, class P, class H>
constexpr bool check_handler() {
    constexpr bool ok = handler_callable<H, const State&, P> || handler_callable<H, State&, P> ||
                        handler_callable<H, Draft<State>&, P>;
    static_assert(
        ok,
        "krmx::StreamModel::when: the handler must be callable as one of\n"
        "  (State&, std::string_view dispatcher, const Payload&)          mutate in place\n"
        "  (const State&, std::string_view dispatcher, const Payload&) -> State   return the next state\n"
        "  (krmx::Draft<State>&, std::string_view dispatcher, const Payload&)    tracked writes\n"
        "(without the payload parameter for an EventType<> without payload)");
    if constexpr (handler_callable<H, const State&, P>) {
        static_assert(
            std::convertible_to<handler_result_t<H, const State&, P>, State>,
            "krmx::StreamModel::when: a handler taking `const State&` cannot change the state, so it "
            "must return the next State");
    }
    return ok;
}

template <class State, class P, class G>
constexpr bool check_guard() {
    if constexpr (std::same_as<G, NoGuard>) {
        return true;
    } else {
        static_assert(
            handler_callable<G, const State&, P>,
            "krmx::StreamModel::when: the guard must be callable as (const State&, std::string_view "
            "dispatcher, const Payload&) (without the payload for an EventType<>)");
        using R = handler_result_t<G, const State&, P>;
        static_assert(std::is_void_v<R> || std::same_as<std::remove_cvref_t<R>, Verdict> ||
                          std::convertible_to<R, bool>,
                      "krmx::StreamModel::when: a guard returns krmx::Verdict, bool, or void (and throws "
                      "krmx::Rejected to refuse)");
        return true;
    }
}

template <class G, class H>
struct Callables {
    G guard;
    H handler;
};

template <class State, class P, class G>
Verdict run_guard(const G& guard, const State& state, std::string_view dispatcher, const P& payload) {
    using R = handler_result_t<G, const State&, P>;
    if constexpr (std::is_void_v<R>) {
        call_handler(guard, state, dispatcher, payload);
        return allow();
    } else if constexpr (std::same_as<std::remove_cvref_t<R>, Verdict>) {
        return call_handler(guard, state, dispatcher, payload);
    } else {
        return call_handler(guard, state, dispatcher, payload) ? allow() : refuse("refused by guard");
    }
}

template <class State, class P, class H>
void run_handler(const H& handler, State& state, std::string_view dispatcher, const P& payload,
                 bool& written) {
    if constexpr (handler_callable<H, const State&, P>) {
        State next = call_handler(handler, std::as_const(state), dispatcher, payload);
        written = true;
        state = std::move(next);
    } else if constexpr (handler_callable<H, State&, P>) {
        written = true;  // unknowable: assume the worst
        if constexpr (std::is_void_v<handler_result_t<H, State&, P>>) {
            call_handler(handler, state, dispatcher, payload);
        } else {
            state = call_handler(handler, state, dispatcher, payload);
        }
    } else {
        Draft<State> draft{state, written};
        call_handler(handler, draft, dispatcher, payload);
    }
}

// The one function a stream calls per event: guard, handler, and the translation of exceptions.
template <class State, class P, class G, class H>
ApplyStatus apply_thunk(const void* callables, State& state, std::string_view dispatcher,
                        const void* payload) {
    const auto& c = *static_cast<const Callables<G, H>*>(callables);
    const P& p = *static_cast<const P*>(payload);
    bool written = false;
    try {
        if constexpr (!std::same_as<G, NoGuard>) {
            Verdict verdict = run_guard<State, P>(c.guard, std::as_const(state), dispatcher, p);
            if (!verdict.allowed()) return {Outcome::rejected, false, std::move(verdict).take_reason()};
        }
        run_handler<State, P>(c.handler, state, dispatcher, p, written);
        return {};
    } catch (const Rejected& e) {
        return {Outcome::rejected, written, Reason{std::string{e.what()}}};
    } catch (const std::exception& e) {
        return {Outcome::failed, written, Reason{"handler failed: " + std::string{e.what()}}};
    } catch (...) {
        return {Outcome::failed, written, Reason{"handler failed with a non-standard exception"}};
    }
}

// The part of a model that logs need: names, payload operations and schema versions by type index.
struct ModelTypes {
    std::vector<std::string_view> names;
    std::vector<const PayloadOps*> ops;
    std::vector<std::uint32_t> schemas;
};

template <class State>
struct Handler {
    std::string name;
    const void* key;  // the registering EventType's address, or nullptr
    const PayloadOps* ops;
    std::shared_ptr<const void> callables;
    ApplyStatus (*apply)(const void*, State&, std::string_view, const void*);
    std::string (*describe_error)(const nlohmann::json& actual, std::string_view conversion_error);

    ApplyStatus operator()(State& state, std::string_view dispatcher, const void* payload) const {
        return apply(callables.get(), state, dispatcher, payload);
    }
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// How a model's state is saved and loaded for snapshots (StreamModel::snapshots).
template <class State>
struct SnapshotCodec {
    std::uint32_t revision = 1;
    nlohmann::json (*save)(const State&) = nullptr;
    State (*load)(const nlohmann::json&) = nullptr;
};

template <class State>
struct ModelData : ModelTypes {
    State initial;
    std::optional<SnapshotCodec<State>> snapshots;
    std::vector<std::shared_ptr<const Handler<State>>> handlers;
    std::vector<const void*> keys;
    std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> by_name;

    explicit ModelData(State s) : initial(std::move(s)) {}

    // The EventType's address finds the handler with a few pointer compares; the name is the fallback
    // (events from JSON, copies of EventTypes). The name is taken by reference so that it is only read
    // on a miss (copying it up front costs a store-forwarding stall on the typed path).
    [[nodiscard]] std::optional<std::uint32_t> find(const void* key, const std::string_view& name) const {
        if (key) {
            for (std::size_t i = 0; i < keys.size(); ++i) {
                if (keys[i] == key) return static_cast<std::uint32_t>(i);
            }
        }
        return find_name(name);
    }

    // Most models have a handful of event types: comparing the names beats hashing one.
    [[nodiscard]] std::optional<std::uint32_t> find_name(std::string_view name) const {
        if (names.size() <= linear_search_limit) {
            for (std::size_t i = 0; i < names.size(); ++i)
                if (short_equal(names[i], name)) return static_cast<std::uint32_t>(i);
            return std::nullopt;
        }
        const auto it = by_name.find(name);
        if (it == by_name.end()) return std::nullopt;
        return it->second;
    }
    static constexpr std::size_t linear_search_limit = 8;
};

}  // namespace detail

/// An initial state plus typed handlers, registered with `when`. Immutable once shared: registering on
/// a model that streams already use copies it first, so running streams never change under you.
template <class State>
class StreamModel {
    static_assert(std::is_object_v<State> && !std::is_const_v<State>,
                  "krmx::StreamModel<State>: State must be a plain object type");
    static_assert(std::copy_constructible<State>,
                  "krmx::StreamModel<State>: State must be copy constructible (streams start from a copy of "
                  "the initial state)");
    static_assert(std::is_move_assignable_v<State>,
                  "krmx::StreamModel<State>: State must be move assignable");

  public:
    using state_type = State;
    using Data = detail::ModelData<State>;

    StreamModel() requires std::default_initializable<State> : StreamModel(State{}) {}
    explicit StreamModel(State initial) : data_(std::make_shared<Data>(std::move(initial))) {}

    /// Registers `handler` for events of `type` (and the type's schema version, which durable domains
    /// record). Throws krmx::ModelError when the type is registered already.
    template <class P, class H>
    StreamModel& when(const EventType<P>& type, H handler) & {
        add<P>(type.name(), type.schema(), &type, detail::NoGuard{}, std::move(handler));
        return *this;
    }
    template <class P, class H>
    StreamModel&& when(const EventType<P>& type, H handler) && {
        return std::move(when(type, std::move(handler)));
    }
    /// Registers a guard that may refuse before the handler runs, and the handler.
    template <class P, class G, class H>
    StreamModel& when(const EventType<P>& type, G guard, H handler) & {
        add<P>(type.name(), type.schema(), &type, std::move(guard), std::move(handler));
        return *this;
    }
    template <class P, class G, class H>
    StreamModel&& when(const EventType<P>& type, G guard, H handler) && {
        return std::move(when(type, std::move(guard), std::move(handler)));
    }
    /// The TypeScript shape: `auto increment = model.when<int>("increment", handler);` returns the event
    /// type (whose name lives in the model, so the model must outlive the events made from it). Schema
    /// version 1.
    template <class P = NoPayload, class H>
    [[nodiscard]] EventType<P> when(std::string_view name, H handler) & {
        const auto& registered = add<P>(name, 1, nullptr, detail::NoGuard{}, std::move(handler));
        return EventType<P>{registered.name};
    }

    /// Lets durable domains, clients and write models snapshot this model's state (store/snapshot.hpp)
    /// through nlohmann's to_json / from_json for State. `revision` names the shape of that JSON: bump it
    /// when the shape changes, and snapshots of other revisions are skipped.
    template <class S = State>
    StreamModel& snapshots(std::uint32_t revision) & {
        static_assert(SnapshotState<S>,
                      "krmx::StreamModel::snapshots: the State needs nlohmann's to_json and from_json, found by "
                      "ADL: define `void to_json(nlohmann::json&, const State&)` and `void from_json(const "
                      "nlohmann::json&, State&)` next to State (or specialise nlohmann::adl_serializer<State>)");
        if constexpr (SnapshotState<S>) {
            if (data_.use_count() > 1) data_ = std::make_shared<Data>(*data_);  // copy on write
            data_->snapshots = detail::SnapshotCodec<State>{
                revision, [](const State& state) { return nlohmann::json(state); },
                [](const nlohmann::json& j) { return j.template get<State>(); }};
        }
        return *this;
    }
    template <class S = State>
    StreamModel&& snapshots(std::uint32_t revision) && {
        return std::move(snapshots<S>(revision));
    }
    /// Whether snapshots() was called, and with which revision.
    [[nodiscard]] std::optional<std::uint32_t> snapshot_revision() const noexcept {
        return data_->snapshots ? std::optional<std::uint32_t>{data_->snapshots->revision} : std::nullopt;
    }

    [[nodiscard]] const State& initial_state() const noexcept { return data_->initial; }
    [[nodiscard]] std::size_t size() const noexcept { return data_->handlers.size(); }
    [[nodiscard]] bool handles(std::string_view type) const { return data_->by_name.contains(type); }
    /// The registered event type names, in registration order.
    [[nodiscard]] const std::vector<std::string_view>& event_types() const noexcept { return data_->names; }
    /// The schema version the model writes events of `type` in (its EventType's), 0 for a type it does
    /// not handle.
    [[nodiscard]] std::uint32_t schema_version(std::string_view type) const {
        const auto index = data_->find_name(type);
        return index ? data_->schemas[*index] : 0;
    }

    /// The shared, immutable definition streams hold on to (so a model may go out of scope before them).
    [[nodiscard]] std::shared_ptr<const Data> data() const noexcept { return data_; }

  private:
    template <class P, class G, class H>
    const detail::Handler<State>& add(std::string_view name, std::uint32_t schema, const void* key, G guard,
                                      H handler) {
        static_assert(detail::check_payload<P>());
        static_assert(detail::check_handler<State, P, H>());
        static_assert(detail::check_guard<State, P, G>());
        if (name.empty()) throw ModelError("krmx::StreamModel::when: an event type needs a name");
        if (data_->by_name.contains(name)) {
            throw ModelError("krmx::StreamModel::when: event type '" + std::string{name} +
                             "' is registered twice");
        }
        if (data_.use_count() > 1) data_ = std::make_shared<Data>(*data_);  // copy on write
        auto h = std::make_shared<detail::Handler<State>>();
        h->name = std::string{name};
        h->key = key;
        h->ops = &detail::payload_ops<P>;
        h->callables = std::make_shared<detail::Callables<G, H>>(
            detail::Callables<G, H>{std::move(guard), std::move(handler)});
        h->apply = &detail::apply_thunk<State, P, G, H>;
        h->describe_error = &detail::describe_payload_error<P>;
        const auto index = static_cast<std::uint32_t>(data_->handlers.size());
        data_->by_name.emplace(h->name, index);
        data_->handlers.push_back(h);
        data_->keys.push_back(key);
        data_->names.push_back(h->name);  // views into the shared, never-moved Handler
        data_->ops.push_back(h->ops);
        data_->schemas.push_back(schema);
        return *h;
    }

    std::shared_ptr<Data> data_;
};

}  // namespace krmx

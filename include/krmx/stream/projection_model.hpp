#pragma once
// ProjectionModel<State, View>: Krmx State's Projection model. The server keeps a State that nobody sees
// whole; each user sees `view(state, username)`, a View. Actions are events with the same typed payloads,
// guards, refusals and handler forms as a StreamModel's (the model's actions() is one); an optional
// optimistic handler per action applies it to the view at once on the client, until the server's delta
// arrives. Game code is written once:
//
//   struct Table { std::map<std::string, std::vector<int>> hands; std::vector<int> pile; };
//   struct Seat { std::vector<int> hand; std::vector<int> pile; };   // what one player sees
//   inline constexpr krmx::EventType<int> play{"play"};
//   auto model = krmx::ProjectionModel<Table, Seat>{Table{}, [](const Table& t, std::string_view user) {
//                    return Seat{t.hands.contains(user) ? t.hands.at(std::string{user}) : {}, t.pile}; }}
//                    .when(play, has_card, play_card)           // (State&, dispatcher, payload), as StreamModel
//                    .optimistic(play, [](Seat& s, std::string_view, const int& card) { s.pile.push_back(card); });
//
// The view must be a pure function of the state and the user (it is called for every user after every
// action, and again after a restart); the View is sent as JSON (nlohmann's to_json, found by ADL) and read
// by clients with from_json.

#include <concepts>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/event_type.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

namespace detail {

template <class View>
constexpr bool check_view() {
    static_assert(std::is_object_v<View> && !std::is_const_v<View>,
                  "krmx::ProjectionModel<State, View>: View must be a plain object type");
    static_assert(requires(const View& v) { nlohmann::json(v); },
                  "krmx::ProjectionModel<State, View>: the View is sent as JSON: give it a `to_json(nlohmann::json&, "
                  "const View&)` that ADL finds (or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE), or use nlohmann::json");
    static_assert(std::default_initializable<View>,
                  "krmx::ProjectionModel<State, View>: View must be default constructible (a client holds one "
                  "before its first view arrives)");
    return true;
}

}  // namespace detail

template <class State, class View>
class ProjectionModel {
    static_assert(detail::check_view<View>());

  public:
    using state_type = State;
    using view_type = View;
    /// `view(state, username)`: what one user sees of the state.
    using ViewFunction = std::function<View(const State&, std::string_view)>;

    template <class F>
        requires std::invocable<const F&, const State&, std::string_view>
    ProjectionModel(State initial, F view) : actions_(std::move(initial)), view_(make_view(std::move(view))) {}

    /// Registers the action `type` with a handler on the state, in any form StreamModel::when takes.
    template <class P, class H>
    ProjectionModel& when(const EventType<P>& type, H handler) & {
        actions_.when(type, std::move(handler));
        return *this;
    }
    template <class P, class H>
    ProjectionModel&& when(const EventType<P>& type, H handler) && {
        return std::move(when(type, std::move(handler)));
    }
    /// The same with a guard that may refuse before the handler runs.
    template <class P, class G, class H>
    ProjectionModel& when(const EventType<P>& type, G guard, H handler) & {
        actions_.when(type, std::move(guard), std::move(handler));
        return *this;
    }
    template <class P, class G, class H>
    ProjectionModel&& when(const EventType<P>& type, G guard, H handler) && {
        return std::move(when(type, std::move(guard), std::move(handler)));
    }
    /// An optimistic handler for the action `type` on the view (client side), in any handler form
    /// StreamModel::when takes with View as the state; it may refuse, like a handler (then the client does
    /// not send the action). Actions without one are sent and shown when the server's delta arrives.
    template <class P, class H>
    ProjectionModel& optimistic(const EventType<P>& type, H handler) & {
        if (!actions_.handles(type.name())) {
            throw ModelError("krmx::ProjectionModel::optimistic: action '" + std::string{type.name()} +
                             "' has no handler (register it with when() first)");
        }
        optimistic_.when(type, std::move(handler));
        return *this;
    }
    template <class P, class H>
    ProjectionModel&& optimistic(const EventType<P>& type, H handler) && {
        return std::move(optimistic(type, std::move(handler)));
    }

    /// Snapshots of the state, for durable domains (StreamModel::snapshots).
    template <class S = State>
    ProjectionModel& snapshots(std::uint32_t revision) & {
        actions_.template snapshots<S>(revision);
        return *this;
    }
    template <class S = State>
    ProjectionModel&& snapshots(std::uint32_t revision) && {
        return std::move(snapshots<S>(revision));
    }

    /// What `user` sees of `state`.
    [[nodiscard]] View view(const State& state, std::string_view user) const { return (*view_)(state, user); }
    /// The actions as a StreamModel of the state: what the server's private stream runs.
    [[nodiscard]] const StreamModel<State>& actions() const noexcept { return actions_; }
    /// The optimistic handlers as a StreamModel of the view: what clients run.
    [[nodiscard]] const StreamModel<View>& optimistic_handlers() const noexcept { return optimistic_; }
    [[nodiscard]] const State& initial_state() const noexcept { return actions_.initial_state(); }

  private:
    template <class F>
    static std::shared_ptr<const ViewFunction> make_view(F view) {
        static_assert(std::convertible_to<std::invoke_result_t<const F&, const State&, std::string_view>, View>,
                      "krmx::ProjectionModel: the view function must return the View");
        return std::make_shared<const ViewFunction>(std::move(view));
    }

    StreamModel<State> actions_;
    StreamModel<View> optimistic_;
    std::shared_ptr<const ViewFunction> view_;  // shared: copies of the model are cheap
};

}  // namespace krmx

#pragma once
// Given/when/then for a game's rules, in one line per expectation, with any test framework or none:
//
//   using krmx::testing::by;
//   krmx::testing::given(counter::model(), {by("bob", counter::claim())})
//       .when("alice", counter::increment(1))
//       .then_refused("claimed by someone else");
//
// `given` applies its events (typed or JSON) through the real Stream; a given event the model refuses is a
// broken test and fails at once. `when` dispatches one more event; each `then_...` checks one thing and
// throws krmx::testing::ExpectationFailed when it does not hold, whose what() prints the given events, the
// event, its outcome, the state before and after (as JSON where the state has a to_json) and the first
// difference. Every `then_...` also checks what every game must hold:
// - a refused event left the state exactly as it was (compared deeply, through the JSON, so a state that
//   shares structure through pointers cannot hide a write);
// - the accepted events, replayed from the initial state, give the same state (straight, and with the
//   state rebuilt from its JSON before each event: see detail/replay_check.hpp).
// For a ProjectionModel, `then_view(user, view)` and `then_view_that` check what one player sees.

#include <concepts>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/outcome.hpp"
#include "krmx/stream/projection_model.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/testing/detail/describe.hpp"
#include "krmx/testing/detail/replay_check.hpp"
#include "krmx/testing/dispatched.hpp"

namespace krmx::testing {

namespace detail {

// The part of a fixture shared by every model kind: the stream, the events, the checks and the report.
template <class State, class Derived>
class BasicFixture {
  public:
    /// One more given event. Throws ExpectationFailed when the model refuses it: the test is broken.
    Derived& and_given(Dispatched event) {
        if (when_) accept_when();
        apply_given(std::move(event));
        return self();
    }
    template <class P>
    Derived& when(std::string_view dispatcher, const TypedEvent<P>& event) {
        return when(dispatcher, event.to_json());
    }
    /// Dispatches the event under test. A second `when` makes the first one history.
    Derived& when(std::string_view dispatcher, const nlohmann::json& event) {
        if (when_) accept_when();
        before_ = Snapshot<State>{stream_.state()};
        when_ = Dispatched{std::string{dispatcher}, event};
        result_ = stream_.dispatch(dispatcher, event);
        checked_ = false;
        return self();
    }

    Derived& then_accepted() {
        check_common("then_accepted");
        if (!result_.accepted()) fail("then_accepted", "the event was " + outcome_text());
        return self();
    }
    /// Refused for any reason (or with exactly `reason`); the state must be as it was.
    Derived& then_refused(std::optional<std::string_view> reason = std::nullopt) {
        check_common("then_refused");
        if (result_.accepted()) fail("then_refused", "the event was accepted");
        if (reason && result_.reason() != *reason) {
            fail("then_refused", "refused with the reason \"" + std::string{result_.reason()} +
                                     "\", expected \"" + std::string{*reason} + "\"");
        }
        return self();
    }
    Derived& then_outcome(Outcome expected) {
        check_common("then_outcome");
        if (result_.outcome() != expected) {
            fail("then_outcome", "expected the outcome " + std::string{to_string(expected)} +
                                     ", the event was " + outcome_text());
        }
        return self();
    }
    /// The state equals `expected` (through the JSON where the state has one, else operator==).
    Derived& then_state(const State& expected) {
        static_assert(
            has_to_json<State> || std::equality_comparable<State>,
            "krmx::testing: then_state compares states: give the State a to_json (nlohmann, found by "
            "ADL) or an operator==; or check a predicate with then_that");
        check_common("then_state");
        const auto d = difference(expected, stream_.state());
        if (d && !d->empty()) {
            fail("then_state", "the state is not the expected one\n  expected:     " + describe(expected) +
                                   "\n  first difference: " + *d);
        }
        return self();
    }
    /// `predicate(const State&)` holds; `what` names it in the report.
    template <class F>
    Derived& then_that(std::string_view what, F&& predicate) {
        static_assert(std::predicate<F&, const State&>,
                      "krmx::testing: then_that takes a predicate callable as (const State&) -> bool");
        check_common("then_that");
        if (!std::invoke(predicate, std::as_const(stream_.state())))
            fail("then_that", "does not hold: " + std::string{what});
        return self();
    }
    /// The events the `when` appended to the stream, in order: the event itself when accepted, none when
    /// refused. Typed events or JSON.
    template <class... Events>
    Derived& then_emitted(const Events&... expected) {
        check_common("then_emitted");
        const std::vector<nlohmann::json> want{event_json(expected)...};
        std::vector<nlohmann::json> got;
        if (result_.accepted()) got.push_back(when_->event);
        if (got != want) {
            fail("then_emitted", "expected the events " + dump(nlohmann::json(want)) + ", emitted " +
                                     dump(nlohmann::json(got)));
        }
        return self();
    }

    [[nodiscard]] const State& state() const noexcept { return stream_.state(); }
    [[nodiscard]] const DispatchResult& result() const noexcept { return result_; }
    /// The events the stream accepted so far (given, and the accepted `when`s).
    [[nodiscard]] const std::vector<Dispatched>& history() const noexcept { return accepted_; }

  protected:
    explicit BasicFixture(const StreamModel<State>& model, std::vector<Dispatched> given)
        : model_(model), stream_(model) {
        for (auto& e : given) apply_given(std::move(e));
    }

    Derived& self() { return static_cast<Derived&>(*this); }

    // Throws the report of one failed expectation.
    [[noreturn]] void fail(std::string_view expectation, const std::string& why) const {
        std::string report = "krmx::testing: " + std::string{expectation} + " failed: " + why + "\n";
        report += "  given:\n";
        if (given_count_ == 0) report += "    (nothing)\n";
        for (std::size_t i = 0; i < given_count_; ++i)
            report += "    #" + std::to_string(i) + " " + to_string(accepted_[i]) + "\n";
        if (when_) {
            report += "  when:  " + to_string(*when_) + " -> " + outcome_text() + "\n";
            report += "  state before: " + before_.str() + "\n";
        }
        report += "  state after:  " + describe(stream_.state()) + "\n";
        throw ExpectationFailed{report};
    }

    void check_common(std::string_view expectation) {
        if (!when_) fail(expectation, "no when(): say which event is under test");
        if (checked_) return;
        checked_ = true;
        if (!result_.accepted()) {
            if (const auto d = before_.difference(stream_.state()); d && !d->empty()) {
                fail(expectation,
                     "the event was refused but the state changed (a handler wrote before it refused, through "
                     "something a roll back does not restore, such as a shared pointer); first difference: " +
                         *d);
            }
        }
        std::vector<Dispatched> all = accepted_;
        if (result_.accepted()) all.push_back(*when_);
        if (auto problem = replay_problem(model_, all, stream_.state()); !problem.empty())
            fail(expectation, problem);
    }

  private:
    void apply_given(Dispatched event) {
        const auto r = stream_.dispatch(event.dispatcher, event.event);
        if (!r) {
            fail("given", "given event #" + std::to_string(accepted_.size()) + " (" + to_string(event) +
                              ") was " + std::string{to_string(r.outcome())} + ": " +
                              std::string{r.reason()});
        }
        accepted_.push_back(std::move(event));
        given_count_ = accepted_.size();
    }
    void accept_when() {
        if (result_.accepted()) accepted_.push_back(*when_);
        given_count_ = accepted_.size();
        when_.reset();
    }
    std::string outcome_text() const {
        if (result_.accepted()) return "accepted";
        return std::string{to_string(result_.outcome())} + ": " + std::string{result_.reason()};
    }
    StreamModel<State> model_;
    Stream<State> stream_;
    std::vector<Dispatched> accepted_;
    std::size_t given_count_ = 0;
    std::optional<Dispatched> when_;
    Snapshot<State> before_;
    DispatchResult result_;
    bool checked_ = false;
};

}  // namespace detail

/// Given/when/then over a StreamModel. Made by krmx::testing::given(model, events).
template <class State>
class ModelFixture : public detail::BasicFixture<State, ModelFixture<State>> {
  public:
    ModelFixture(const StreamModel<State>& model, std::vector<Dispatched> given)
        : detail::BasicFixture<State, ModelFixture<State>>(model, std::move(given)) {}
};

/// Given/when/then over a ProjectionModel: the same, and what each user sees.
template <class State, class View>
class ProjectionFixture : public detail::BasicFixture<State, ProjectionFixture<State, View>> {
    using Base = detail::BasicFixture<State, ProjectionFixture<State, View>>;

  public:
    ProjectionFixture(const ProjectionModel<State, View>& model, std::vector<Dispatched> given)
        : Base(model.actions(), std::move(given)), projection_(model) {}

    /// What `user` sees equals `expected` (through the JSON every View has).
    ProjectionFixture& then_view(std::string_view user, const View& expected) {
        this->check_common("then_view");
        const View seen = projection_.view(this->state(), user);
        if (const auto d = detail::difference(expected, seen); d && !d->empty()) {
            this->fail("then_view",
                       "what " + std::string{user} +
                           " sees is not the expected view\n  sees:     " + detail::describe(seen) +
                           "\n  expected: " + detail::describe(expected) + "\n  first difference: " + *d);
        }
        return *this;
    }
    /// `predicate(const View&)` holds for what `user` sees.
    template <class F>
    ProjectionFixture& then_view_that(std::string_view user, std::string_view what, F&& predicate) {
        static_assert(std::predicate<F&, const View&>,
                      "krmx::testing: then_view_that takes a predicate callable as (const View&) -> bool");
        this->check_common("then_view_that");
        const View seen = projection_.view(this->state(), user);
        if (!std::invoke(predicate, std::as_const(seen))) {
            this->fail("then_view_that", "does not hold for what " + std::string{user} + " sees: " +
                                             std::string{what} + "\n  sees: " + detail::describe(seen));
        }
        return *this;
    }

  private:
    ProjectionModel<State, View> projection_;
};

template <class State>
[[nodiscard]] ModelFixture<State> given(const StreamModel<State>& model,
                                        std::vector<Dispatched> events = {}) {
    return ModelFixture<State>{model, std::move(events)};
}
template <class State, class View>
[[nodiscard]] ProjectionFixture<State, View> given(const ProjectionModel<State, View>& model,
                                                   std::vector<Dispatched> events = {}) {
    return ProjectionFixture<State, View>{model, std::move(events)};
}

}  // namespace krmx::testing

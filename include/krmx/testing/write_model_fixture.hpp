#pragma once
// Given/when/then for a write model (Krescent style): given the events of its entity's stream, when a
// decision runs, then these events were emitted / it was refused / the state is this one.
//
//   krmx::testing::given(book_write_model("1"), book_added({"1", "Dune", "Frank Herbert", 29.99, 1}))
//       .when([](krmx::WriteContext<Book>& w) { w.emit(book_lent({"1", "alice"})); })
//       .then_emitted(book_lent({"1", "alice"}));
//
// The events are appended to a MemoryEventStore on the model's stream and the decision runs through the
// model's real `handle` (catch-up, block, append with the expected revision). Failures throw
// krmx::testing::ExpectationFailed with the given events, the emitted ones, the outcome and the state.
// Every `then_...` also checks that catching up again on the stream as written gives the state the
// decision ended with (a reducer that reads clocks or globals fails it).

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/models/write_model.hpp"
#include "krmx/store/memory_event_store.hpp"
#include "krmx/testing/detail/describe.hpp"
#include "krmx/testing/dispatched.hpp"

namespace krmx::testing {

template <class State>
class WriteFixture {
  public:
    WriteFixture(WriteModel<State> model, std::vector<NewEvent> given) : model_(std::move(model)) {
        if (model_.stream().empty()) {
            throw std::logic_error("krmx::testing::given: the write model has no stream (call on_stream)");
        }
        if (!given.empty()) (void)store_.append(model_.stream(), ExpectedRevision::any(), given);
        given_ = std::move(given);
    }

    /// Runs the decision `block(WriteContext<State>&)` through the model's handle.
    template <class F>
    WriteFixture& when(F&& block) {
        static_assert(
            std::invocable<F&, WriteContext<State>&>,
            "krmx::testing::WriteFixture::when: the block must be callable as (krmx::WriteContext<State>&)");
        result_.reset();
        error_.clear();
        const auto revision = store_.stream_revision(model_.stream());
        from_ = revision ? *revision + 1 : 0;
        try {
            result_.emplace(model_.with_source(store_).handle(std::forward<F>(block)));
        } catch (const std::exception& e) {
            error_ = e.what();
        }
        checked_ = false;
        return *this;
    }

    /// The events the decision emitted, in order (typed events, NewEvents or `{"type","payload"}` JSON);
    /// none: nothing was emitted.
    template <class... Events>
    WriteFixture& then_emitted(const Events&... expected) {
        check_common("then_emitted");
        const std::vector<nlohmann::json> want{detail::event_json(expected)...};
        const auto got = emitted();
        if (got != want) {
            fail("then_emitted", "expected the events " + detail::dump(nlohmann::json(want)) + ", emitted " +
                                     detail::dump(nlohmann::json(got)));
        }
        return *this;
    }
    /// Refused (by the block or a guard), for any reason or with exactly `reason`; nothing was appended.
    WriteFixture& then_refused(std::optional<std::string_view> reason = std::nullopt) {
        check_common("then_refused");
        if (!result_->refused()) fail("then_refused", "the decision was not refused");
        if (reason && result_->reason != *reason) {
            fail("then_refused", "refused with the reason \"" + result_->reason + "\", expected \"" +
                                     std::string{*reason} + "\"");
        }
        return *this;
    }
    WriteFixture& then_state(const State& expected) {
        static_assert(
            detail::has_to_json<State> || std::equality_comparable<State>,
            "krmx::testing: then_state compares states: give the State a to_json (nlohmann, found by "
            "ADL) or an operator==; or check a predicate with then_that");
        check_common("then_state");
        if (const auto d = detail::difference(expected, result_->state); d && !d->empty()) {
            fail("then_state", "the state is not the expected one\n  expected: " +
                                   detail::describe(expected) + "\n  first difference: " + *d);
        }
        return *this;
    }
    template <class F>
    WriteFixture& then_that(std::string_view what, F&& predicate) {
        static_assert(std::predicate<F&, const State&>,
                      "krmx::testing: then_that takes a predicate callable as (const State&) -> bool");
        check_common("then_that");
        if (!std::invoke(predicate, std::as_const(result_->state)))
            fail("then_that", "does not hold: " + std::string{what});
        return *this;
    }

    [[nodiscard]] const WriteResult<State>& result() const { return *result_; }
    [[nodiscard]] const MemoryEventStore& store() const noexcept { return store_; }

  private:
    std::vector<nlohmann::json> emitted() const {
        std::vector<nlohmann::json> events;
        if (!result_ || !result_->appended()) return events;
        for (const auto& e : store_.read_stream(model_.stream(), from_))
            events.push_back(detail::event_json(e));
        return events;
    }

    void check_common(std::string_view expectation) {
        if (!result_ && error_.empty()) fail(expectation, "no when(): say which decision is under test");
        if (!error_.empty()) fail(expectation, "the decision threw: " + error_);
        if (checked_) return;
        checked_ = true;
        // Catching up again on what is stored now must give the state the decision ended with.
        const auto again = model_.with_source(store_).handle([](WriteContext<State>&) {});
        const auto d = detail::difference(result_->state, again.state);
        if (result_->appended() && d && !d->empty()) {
            fail(expectation,
                 "catching up on the stream as written gives another state than the decision "
                 "ended with: the reducer must be deterministic. First difference: " +
                     *d);
        }
    }

    [[noreturn]] void fail(std::string_view expectation, const std::string& why) const {
        std::string report = "krmx::testing: " + std::string{expectation} + " failed: " + why + "\n";
        report += "  given (stream '" + model_.stream() + "'):\n";
        if (given_.empty()) report += "    (nothing)\n";
        for (std::size_t i = 0; i < given_.size(); ++i)
            report += "    #" + std::to_string(i) + " " + detail::dump(detail::event_json(given_[i])) + "\n";
        if (result_) {
            report += "  when:  -> " + std::string{to_string(result_->status)} +
                      (result_->refused() ? ": " + result_->reason : std::string{}) + "\n";
            report += "  emitted: " + detail::dump(nlohmann::json(emitted())) + "\n";
            report += "  state after: " + detail::describe(result_->state) + "\n";
        }
        throw ExpectationFailed{report};
    }

    WriteModel<State> model_;
    MemoryEventStore store_;
    std::vector<NewEvent> given_;
    Revision from_ = 0;  // the stream's first revision the decision appended
    std::optional<WriteResult<State>> result_;
    std::string error_;
    bool checked_ = false;
};

namespace detail {
template <class State, class P>
NewEvent given_event(const WriteModel<State>& model, const TypedEvent<P>& e) {
    return model.catalog().encode(e);
}
template <class State>
NewEvent given_event(const WriteModel<State>&, NewEvent e) {
    return e;
}
}  // namespace detail

/// A write model's fixture: `events` (typed events of its catalog, or NewEvents) are the stream's past.
template <class State, class... Events>
[[nodiscard]] WriteFixture<State> given(const WriteModel<State>& model, const Events&... events) {
    return WriteFixture<State>{model, std::vector<NewEvent>{detail::given_event(model, events)...}};
}

}  // namespace krmx::testing

// Given/when/then fixtures: they pass on correct rules, and each failure says what happened, where the
// state differs, and which rule every game must hold was broken.
#include <string>
#include <string_view>

#include <krmx/testing/model_fixture.hpp>
#include <krmx/testing/write_model_fixture.hpp>

#include "bookstore/bookstore.hpp"
#include "buggy_models.hpp"
#include "cards/cards.hpp"
#include "catch.hpp"
#include "claimable_counter/counter.hpp"

using krmx::testing::by;
using krmx::testing::ExpectationFailed;
using krmx::testing::given;
using Catch::Matchers::Contains;

namespace {
// The report of the expectation `f` throws; fails the test when it throws nothing.
template <class F>
std::string report_of(F&& f) {
    try {
        f();
    } catch (const ExpectationFailed& e) {
        return e.what();
    }
    FAIL("the expectation held");
    return {};
}
}  // namespace

TEST_CASE("a stream model's rules read as given, when, then") {
    // CHECK_NOTHROW is all Catch2 needs: a failed expectation's exception carries the whole report.
    CHECK_NOTHROW(given(counter::model(), {by("alice", counter::increment(3))})
                      .when("alice", counter::increment(2))
                      .then_accepted()
                      .then_state(Counter{5, std::nullopt})
                      .then_emitted(counter::increment(2)));
    CHECK_NOTHROW(given(counter::model(), {by("bob", counter::claim())})
                      .when("alice", counter::increment(1))
                      .then_refused("claimed by someone else")
                      .then_emitted()
                      .then_that("bob holds the claim", [](const Counter& c) { return c.claim == "bob"; }));
    // JSON events, as from the wire; a second when makes the first one history.
    CHECK_NOTHROW(given(counter::model())
                      .when("alice", nlohmann::json{{"type", "claim"}})
                      .then_accepted()
                      .when("alice", nlohmann::json{{"type", "nonsense"}})
                      .then_outcome(krmx::Outcome::unknown_type));
}

TEST_CASE("a failed expectation prints the events, the outcome, both states and the first difference") {
    const auto report = report_of([] {
        given(buggy::good_tally(), {by("alice", buggy::score(3)), by("bob", buggy::score(4))})
            .when("alice", buggy::score(2))
            .then_state(buggy::Tally{{{"alice", 5}, {"bob", 4}}, "bob", 0});
    });
    CHECK_THAT(report, Contains("then_state failed"));
    CHECK_THAT(report, Contains(R"(#1 bob {"payload":4,"type":"score"})"));
    CHECK_THAT(report, Contains(R"(when:  alice {"payload":2,"type":"score"} -> accepted)"));
    CHECK_THAT(report, Contains(R"(state before: {"leader":"bob","points":{"alice":3,"bob":4},"stamp":0})"));
    CHECK_THAT(report, Contains(R"(first difference: /leader: expected "bob", got "alice")"));

    CHECK_THAT(report_of([] {
                   given(counter::model()).when("alice", counter::increment(1)).then_refused();
               }),
               Contains("then_refused failed: the event was accepted"));
    CHECK_THAT(report_of([] {
                   given(counter::model(), {by("bob", counter::claim())})
                       .when("alice", counter::increment(1))
                       .then_refused("nope");
               }),
               Contains(R"(refused with the reason "claimed by someone else", expected "nope")"));
    CHECK_THAT(report_of([] { given(counter::model()).then_accepted(); }), Contains("no when()"));
    CHECK_THAT(report_of([] {
                   given(counter::model()).when("a", counter::increment(1)).then_emitted(counter::increment(2));
               }),
               Contains(R"(expected the events [{"payload":2,"type":"increment"}], emitted [{"payload":1,"type":"increment"}])"));
}

TEST_CASE("a given event the model refuses is a broken test, reported at once") {
    CHECK_THAT(report_of([] { (void)given(counter::model(), {by("a", counter::claim()), by("b", counter::claim())}); }),
               Contains(R"(given event #1 (b {"type":"claim"}) was rejected: already claimed)"));
}

TEST_CASE("a handler that reads the wall clock or a global fails every then, as a replay differs") {
    const auto clock = report_of([] { given(buggy::clock_tally()).when("alice", buggy::score(1)).then_accepted(); });
    CHECK_THAT(clock, Contains("gave another state; handlers must be deterministic"));
    CHECK_THAT(clock, Contains("/stamp"));
    const auto global = report_of([] {
        given(buggy::global_tally(), {by("alice", buggy::score(1))}).when("bob", buggy::score(1)).then_accepted();
    });
    CHECK_THAT(global, Contains("handlers must be deterministic"));
}

TEST_CASE("a handler that writes through a shared pointer before it refuses is caught, though the stream rolled back") {
    const auto report = report_of([] {
        given(buggy::shared_tally(), {by("alice", buggy::score(1))}).when("alice", buggy::score(11)).then_refused();
    });
    CHECK_THAT(report, Contains("the event was refused but the state changed"));
    // 1 + 11 written through the pointer, and the roll back's replay of the first score adds 1 again.
    CHECK_THAT(report, Contains("/points/alice: expected 1, got 13"));
    CHECK_THAT(report, Contains(R"(state before: {"points":{"alice":1}})"));
}

TEST_CASE("rules that depend on an unordered container's order fail the replay through the state's JSON") {
    const auto report = report_of([] {
        given(buggy::hash_tally(), {by("carol", buggy::score(1)), by("alice", buggy::score(1))})
            .when("bob", buggy::score(1))
            .then_accepted();
    });
    CHECK_THAT(report, Contains("rebuilt from its JSON"));
    CHECK_THAT(report, Contains("/leader"));
}

TEST_CASE("a projection model's fixture checks what each player sees") {
    using cards::Seat;
    std::vector<int> deck(52);
    for (int i = 0; i < 52; ++i) deck[static_cast<std::size_t>(i)] = i;
    auto table = given(cards::model(), {by("alice", cards::sit()), by("bob", cards::sit()),
                                        by(krmx::server_dispatcher, cards::deal(deck))});
    // Dealt from the back: alice 51, 49, ..., bob 50, 48, ...; the pile's top is 41.
    table.when("bob", cards::play(50))
        .then_refused("not your turn")
        .then_view_that("bob", "bob holds five cards", [](const Seat& s) { return s.hand.size() == 5; })
        .then_view_that("carol", "a spectator sees no hand", [](const Seat& s) { return s.hand.empty(); });
    table.when("alice", cards::draw())
        .then_accepted()
        .then_view_that("bob", "bob sees that alice holds six, not which",
                        [](const Seat& s) { return s.held.at("alice") == 6 && s.hand.size() == 5; });
    CHECK_THAT(report_of([&] { table.then_view("carol", Seat{}); }), Contains("what carol sees is not the expected view"));
}

TEST_CASE("a write model's fixture: given the entity's events, when a decision, then what it emitted") {
    using namespace bookstore;
    given(book_write_model("1"), book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 1}))
        .when([](krmx::WriteContext<Book>& w) { w.emit(book_lent(Lending{"1", "alice"})); })
        .then_emitted(book_lent(Lending{"1", "alice"}))
        .then_that("no copy is left", [](const Book& b) { return b.available() == 0; })
        .when([](krmx::WriteContext<Book>& w) { w.emit(book_lent(Lending{"1", "bob"})); })
        .then_refused("no copies of book '1' are left to lend");
    const auto report = report_of([] {
        given(book_write_model("1"), book_added(BookAdded{"1", "Dune", "Frank Herbert", 29.99, 1}))
            .when([](krmx::WriteContext<Book>& w) { w.emit(book_lent(Lending{"1", "alice"})); })
            .then_emitted();
    });
    CHECK_THAT(report, Contains(R"(expected the events [], emitted [{"payload":{"book_id":"1","user_id":"alice"},"type":"book.lent"}])"));
    CHECK_THAT(report, Contains("given (stream 'book-1')"));
}

// The simulator: the project's own games pass many schedules; each classic bug is found within 1 000
// schedules and shrunk to at most 3 players and 10 events, with a report that replays exactly.
#include <string>
#include <string_view>

#include <krmx/testing/model_fixture.hpp>
#include <krmx/testing/simulator.hpp>

#include "broken_stores.hpp"
#include "buggy_models.hpp"
#include "catch.hpp"
#include "alphabet/alphabet.hpp"
#include "cards/cards.hpp"
#include "claimable_counter/counter.hpp"
#include "counter_player.hpp"

using krmx::testing::Random;
using krmx::testing::Simulator;
using Catch::Matchers::Contains;

namespace {

nlohmann::json small_score(Random& r, const buggy::Tally&, std::string_view) {
    return buggy::score(static_cast<int>(r.between(1, 3)));
}

// The report of a failed run, checked for what every bug's report must have.
void require_found(const krmx::testing::SimulationReport& report, std::string_view check) {
    INFO(report.str());
    REQUIRE_FALSE(report.ok());
    CHECK(report.failure->check == check);
    CHECK(report.schedules <= 1000);
    CHECK(report.shrunk->players().size() <= 3);
    CHECK(report.shrunk->events() <= 10);
    CHECK_THAT(report.str(), Contains("seed " + std::to_string(report.original->seed)));
}

}  // namespace

TEST_CASE("the claimable counter passes every check on many wild schedules") {
    auto sim = Simulator<Counter>{counter::model()}.players(2, 4).generate(counter_move).invariant(
        "the claim is held by a player", [](const Counter& c) { return !c.claim || !c.claim->empty(); });
    const auto report = sim.run(300, 7);
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.schedules == 300);
    CHECK(report.events > 2000);
    // The schedules did what they are for: most events confirmed, and restarts and failed commits among them.
    CHECK(report.offline < report.events / 4);
    CHECK(report.confirmed > (report.events - report.offline - report.refused_locally) / 2);
    CHECK(report.restarts > 50);
    CHECK(report.failed_commits > 20);
}

TEST_CASE("a schedule is a function of its seed, and a failure replays exactly from its report") {
    auto sim = Simulator<buggy::Tally>{buggy::clock_tally()}.generate(small_score);
    CHECK(sim.make_schedule(42).to_json() == sim.make_schedule(42).to_json());
    CHECK(sim.make_schedule(42).to_json() != sim.make_schedule(43).to_json());
    const auto report = sim.run(1000, 3);
    REQUIRE_FALSE(report.ok());
    const auto again = krmx::testing::Schedule::from_json(report.shrunk->to_json());
    CHECK(again.to_json() == report.shrunk->to_json());
    const auto replayed = sim.replay(again);
    REQUIRE(replayed);
    CHECK(replayed->check == report.failure->check);
    const auto from_seed = sim.run_seed(report.original->seed);
    REQUIRE_FALSE(from_seed.ok());
    CHECK(from_seed.shrunk->to_json() == report.shrunk->to_json());
    CHECK_THAT(report.str(), Contains("replay it: simulator.replay(krmx::testing::Schedule::from_json"));
}

TEST_CASE("the simulator finds a handler that reads the wall clock") {
    const auto report = Simulator<buggy::Tally>{buggy::clock_tally()}.generate(small_score).run(1000);
    require_found(report, report.failure ? report.failure->check : "");
    CHECK((report.failure->check == "convergence" || report.failure->check == "determinism"));
    CHECK_THAT(report.failure->message, Contains("/stamp"));
}

TEST_CASE("the simulator finds a handler that counts in a global") {
    const auto report = Simulator<buggy::Tally>{buggy::global_tally()}.generate(small_score).run(1000);
    require_found(report, report.failure ? report.failure->check : "");
    CHECK((report.failure->check == "convergence" || report.failure->check == "determinism"));
}

TEST_CASE("the simulator finds a handler that writes before it refuses") {
    // Without failed commits and restarts, whose roll backs would show the same sharing as a replay that
    // differs (the determinism check) before any refusal does.
    krmx::testing::SimulationOptions options;
    options.commit_failures = false;
    options.restarts = false;
    const auto report = Simulator<buggy::SharedTally>{buggy::shared_tally(), options}
                            .generate([](Random& r, const buggy::SharedTally&, std::string_view) {
                                return buggy::score(static_cast<int>(r.between(1, 12)));
                            })
                            .run(1000);
    require_found(report, "refusal");
    CHECK_THAT(report.failure->message, Contains("refused"));
}

TEST_CASE("the simulator finds rules that depend on the order of an unordered container") {
    const auto report = Simulator<buggy::HashTally>{buggy::hash_tally()}
                            .generate([](Random& r, const buggy::HashTally&, std::string_view) {
                                return buggy::score(static_cast<int>(r.between(1, 2)));
                            })
                            .run(1000);
    require_found(report, "determinism");
    CHECK_THAT(report.failure->message, Contains("rebuilt from its JSON"));
}

TEST_CASE("the simulator finds an optimistic client whose rules differ from the server's") {
    const auto report = Simulator<buggy::Tally>{buggy::good_tally()}
                            .client_model(buggy::other_tiebreak_tally())
                            .generate(small_score)
                            .run(1000);
    require_found(report, "convergence");
    CHECK_THAT(report.failure->message, Contains("/leader"));
}

TEST_CASE("the simulator finds a store that loses its last append on restart") {
    const auto report = Simulator<buggy::Tally, broken_stores::LosesLastEventOnRestart>{buggy::good_tally()}.generate(small_score).run(1000);
    require_found(report, "lost");
    CHECK_THAT(report.str(), Contains("restarts"));
}

TEST_CASE("correct tally rules pass, with and without faults") {
    auto sim = Simulator<buggy::Tally>{buggy::good_tally()}.generate(small_score).invariant(
        "the leader has the most points", [](const buggy::Tally& t) {
            for (const auto& [player, points] : t.points)
                if (points > t.points.at(t.leader)) return false;
            return true;
        });
    const auto report = sim.run(200, 11);
    INFO(report.str());
    CHECK(report.ok());
}

TEST_CASE("the alphabet, Krmx's starter game, passes the simulator and its fixtures") {
    auto sim = Simulator<Alphabet>{alphabet::model()}
                   .generate([](Random& r, const Alphabet& a, std::string_view player) -> nlohmann::json {
                       if (a.claim == player && r.chance(0.3)) return r.chance(0.5) ? alphabet::release() : alphabet::reset();
                       return r.chance(0.15) ? alphabet::claim() : alphabet::extend();
                   })
                   .invariant("the letters run from a without a gap", [](const Alphabet& a) {
                       for (std::size_t i = 0; i < a.letters.size(); ++i)
                           if (a.letters[i] != static_cast<char>('a' + i)) return false;
                       return a.letters.size() <= 26;
                   });
    const auto report = sim.run(300, 5);
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.confirmed > 1000);

    using krmx::testing::by;
    krmx::testing::given(alphabet::model(), {by("alice", alphabet::extend()), by("bob", alphabet::claim())})
        .when("alice", alphabet::extend())
        .then_refused("claimed by someone else")
        .when("bob", alphabet::reset())
        .then_state(Alphabet{"", "bob"});
}

namespace {

// A player of the card game, from what it sees: sit down before the deal; on its turn play a card that
// matches the top card, or else draw; out of turn, now and then try anyway (and be refused).
nlohmann::json card_move(Random& r, const cards::Seat& seat, std::string_view player) {
    if (seat.turn.empty()) return seat.held.contains(std::string{player}) ? nlohmann::json{} : nlohmann::json(cards::sit());
    if (seat.turn != player && !r.chance(0.1)) return nullptr;
    for (const int card : seat.hand) {
        if (seat.top && cards::matches(card, *seat.top) && !r.chance(0.1)) return cards::play(card);
    }
    return cards::draw();
}

// The server deals a shuffled deck once two players sit.
nlohmann::json card_deal(Random& r, const cards::Table& t) {
    if (t.dealt || t.seats.size() < 2) return nullptr;
    std::vector<int> deck(52);
    for (std::size_t i = 0; i < deck.size(); ++i) deck[i] = static_cast<int>(i);
    for (std::size_t i = deck.size() - 1; i > 0; --i) std::swap(deck[i], deck[r.below(i + 1)]);
    return cards::deal(deck);
}

bool no_card_lost(const cards::Table& t) {
    if (!t.dealt) return t.deck.empty() && t.pile.empty();
    std::size_t count = t.deck.size() + t.pile.size();
    for (const auto& [player, hand] : t.hands) count += hand.size();
    return count == 52;
}

}  // namespace

TEST_CASE("the card game with secrets passes the projection simulator: every view converges") {
    auto sim = krmx::testing::ProjectionSimulator<cards::Table, cards::Seat>{cards::model()}
                   .players(2, 4)
                   .steps(20, 60)  // a game takes a few rounds
                   .generate(card_move)
                   .server_events(card_deal, 0.2)
                   .invariant("no card is lost or made up", no_card_lost);
    const auto report = sim.run(200, 9);
    INFO(report.str());
    CHECK(report.ok());
    CHECK(report.confirmed > 300);
    CHECK(report.restarts > 50);
}

TEST_CASE("the projection simulator finds a view that is not a pure function of the state and the user") {
    static int calls = 0;  // the bug: what a player sees depends on how often views were made
    const auto leaky = krmx::ProjectionModel<buggy::Tally, buggy::Tally>{
        buggy::Tally{}, [](const buggy::Tally& t, std::string_view) {
            auto seen = t;
            seen.stamp = ++calls % 7;
            return seen;
        }}.when(buggy::score, [](buggy::Tally& t, std::string_view by, const int& n) { t.points[std::string{by}] += n; });
    const auto report = krmx::testing::ProjectionSimulator<buggy::Tally, buggy::Tally>{leaky}
                            .generate([](Random& r, const buggy::Tally&, std::string_view) {
                                return buggy::score(static_cast<int>(r.between(1, 3)));
                            })
                            .run(1000);
    require_found(report, report.failure ? report.failure->check : "");
    CHECK((report.failure->check == "convergence" || report.failure->check == "determinism"));
    CHECK_THAT(report.failure->message, Contains("/stamp"));
}

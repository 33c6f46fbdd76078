#pragma once
// krmx::testing::Simulator: throws seeded schedules of players, lag, disconnects, restarts and failing
// commits at a game's StreamModel, through the real server and clients (a krmx::testing::Hub, on the
// production session, with a durable StreamDomain and one StreamClient per player), and checks after each
// schedule what every game must hold:
//   - every client converges to the server's state (synced, nothing pending, the same state);
//   - every refused event left the server's state exactly as it was;
//   - no event a client saw confirmed is lost or replaced, across restarts;
//   - the stored log, replayed from the initial state, gives the server's state (straight, and with the state
//     rebuilt from its JSON before each event): handlers that read clocks, random numbers or globals, or the
//     order of an unordered container, fail it;
//   - the game's own invariants, on the server's state after every step and on every client's at the end.
// A failure is shrunk (fewest players, then fewest steps that still fail the same check) and reported with
// its seed and the shrunk schedule, which replays exactly: `replay(schedule)` runs the same steps, and
// `run_seed(seed)` makes and runs the same schedule again.
//
//   auto report = krmx::testing::Simulator<Counter>{counter::model()}
//       .players(2, 4)
//       .generate([](krmx::testing::Random& r, const Counter&, std::string_view) -> nlohmann::json {
//           return counter::increment(static_cast<int>(r.between(-3, 3)));
//       })
//       .invariant("only a player holds the claim", [](const Counter& c) { return !c.claim || !c.claim->empty(); })
//       .run(1000);
//   if (!report.ok()) std::cerr << report.str();
//
// krmx::testing::ProjectionSimulator<State, View> does the same for a ProjectionModel (a game with secrets):
// the server runs a ProjectionDomain, each player a ProjectionClient, the generator picks from the player's
// own view, a client has converged when its view is what the server's state shows it, and the replay check
// also compares what every player sees (so a State without JSON or == is checked through its views).
// Confirmed events are then the server's: its clients hold views, not events.
//
// Deterministic: one schedule is a function of its seed alone (the generators get a Random made from it;
// the Hub has a manual clock; commits are synchronous), so a failure replays on any machine with the same
// code. Schedules are generated from a shadow copy of the server's stream, so that the generator can pick
// events that make sense in the state the game is in (a valid move, mostly).
//
// Generation and shrinking are our own, not RapidCheck's: the library depends on nlohmann/json alone, a
// schedule must replay from its seed with any standard library, and the shrinker works on whole players
// before single steps and keeps the same check failing, which a generic shrinker of values does not know.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/store/memory_event_store.hpp"
#include "krmx/stream/projection_model.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/durable.hpp"
#include "krmx/sync/projection_client.hpp"
#include "krmx/sync/projection_domain.hpp"
#include "krmx/sync/stream_client.hpp"
#include "krmx/sync/stream_domain.hpp"
#include "krmx/testing/detail/describe.hpp"
#include "krmx/testing/detail/replay_check.hpp"
#include "krmx/testing/dispatched.hpp"
#include "krmx/testing/hub.hpp"
#include "krmx/testing/store_fixture.hpp"

namespace krmx::testing {

/// The simulator's source of choices: a 64-bit Mersenne Twister and arithmetic of its own, so that a seed
/// gives the same schedule with every standard library (the std distributions are not specified exactly).
class Random {
  public:
    explicit Random(std::uint64_t seed) : engine_(seed) {}
    /// In [0, n); 0 when n is 0.
    [[nodiscard]] std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : engine_() % n; }
    /// In [low, high].
    [[nodiscard]] std::int64_t between(std::int64_t low, std::int64_t high) {
        if (high <= low) return low;
        return low + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(high - low) + 1));
    }
    /// True with probability p.
    [[nodiscard]] bool chance(double p) { return static_cast<double>(engine_() >> 11) * 0x1.0p-53 < p; }
    template <class T>
    [[nodiscard]] const T& pick(std::span<const T> items) {
        return items[below(items.size())];
    }
    template <class T>
    [[nodiscard]] const T& pick(const std::vector<T>& items) {
        return items[below(items.size())];
    }

  private:
    std::mt19937_64 engine_;
};

/// One step of a schedule.
struct Step {
    enum class Kind : std::uint8_t {
        join,             ///< the player connects (latency `amount` ms) and links
        dispatch,         ///< the player's client dispatches `event` (when linked)
        server_dispatch,  ///< server code dispatches `event` as "<server>"
        deliver,          ///< up to `amount` messages arrive
        advance,          ///< `amount` ms pass (everything due arrives; optimistic events may expire)
        drop,             ///< the player's connection breaks; what was in flight is lost
        unlink,           ///< the player unlinks
        leave,            ///< the player leaves the session (krmx/leave)
        relink,           ///< the player links again (reconnecting after a drop)
        restart,          ///< the server restarts from its store: connections break, the domain restores
        fail_commit,      ///< the store refuses the next commit
    };
    Kind kind = Kind::deliver;
    std::size_t player = 0;
    nlohmann::json event = nullptr;
    std::int64_t amount = 0;

    /// Whether the step is a player's (and `player` means something).
    [[nodiscard]] bool of_player() const noexcept {
        return kind == Kind::join || kind == Kind::dispatch || kind == Kind::drop || kind == Kind::unlink ||
               kind == Kind::leave || kind == Kind::relink;
    }
};

[[nodiscard]] constexpr std::string_view to_string(Step::Kind kind) noexcept {
    switch (kind) {
        case Step::Kind::join:
            return "join";
        case Step::Kind::dispatch:
            return "dispatch";
        case Step::Kind::server_dispatch:
            return "server_dispatch";
        case Step::Kind::deliver:
            return "deliver";
        case Step::Kind::advance:
            return "advance";
        case Step::Kind::drop:
            return "drop";
        case Step::Kind::unlink:
            return "unlink";
        case Step::Kind::leave:
            return "leave";
        case Step::Kind::relink:
            return "relink";
        case Step::Kind::restart:
            return "restart";
        case Step::Kind::fail_commit:
            return "fail_commit";
    }
    return "?";
}

/// The name of player i: alice, bob, carol, ... then p9, p10, ...
[[nodiscard]] inline std::string player_name(std::size_t i) {
    static constexpr std::string_view names[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};
    return i < std::size(names) ? std::string{names[i]} : "p" + std::to_string(i + 1);
}

/// A whole schedule: what one simulated game does, step by step.
struct Schedule {
    std::uint64_t seed = 0;
    std::vector<Step> steps;

    /// The players the steps mention.
    [[nodiscard]] std::set<std::size_t> players() const {
        std::set<std::size_t> used;
        for (const auto& s : steps) {
            if (s.of_player()) used.insert(s.player);
        }
        return used;
    }
    /// How many events it dispatches (players' and the server's).
    [[nodiscard]] std::size_t events() const {
        return static_cast<std::size_t>(std::count_if(steps.begin(), steps.end(), [](const Step& s) {
            return s.kind == Step::Kind::dispatch || s.kind == Step::Kind::server_dispatch;
        }));
    }
    /// One line per step.
    [[nodiscard]] std::string str() const {
        std::string out;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const auto& s = steps[i];
            out += "  " + std::to_string(i) + ". ";
            switch (s.kind) {
                case Step::Kind::join:
                    out += player_name(s.player) + " joins (latency " + std::to_string(s.amount) + " ms)";
                    break;
                case Step::Kind::dispatch:
                    out += player_name(s.player) + " dispatches " + detail::dump(s.event);
                    break;
                case Step::Kind::server_dispatch:
                    out += "the server dispatches " + detail::dump(s.event);
                    break;
                case Step::Kind::deliver:
                    out += "deliver " + std::to_string(s.amount) + " message(s)";
                    break;
                case Step::Kind::advance:
                    out += std::to_string(s.amount) + " ms pass";
                    break;
                case Step::Kind::restart:
                    out += "the server restarts from its store";
                    break;
                case Step::Kind::fail_commit:
                    out += "the store will refuse the next commit";
                    break;
                default:
                    out += player_name(s.player) + " " + std::string{to_string(s.kind)} + "s";
                    break;
            }
            out += "\n";
        }
        return out;
    }
    /// The form `Schedule::from_json` reads back (paste a failure into a test to keep it).
    [[nodiscard]] nlohmann::json to_json() const {
        nlohmann::json out{{"seed", seed}, {"steps", nlohmann::json::array()}};
        for (const auto& s : steps) {
            out["steps"].push_back({to_string(s.kind), s.player, s.event, s.amount});
        }
        return out;
    }
    [[nodiscard]] static Schedule from_json(const nlohmann::json& j) {
        Schedule schedule;
        schedule.seed = j.at("seed").get<std::uint64_t>();
        for (const auto& s : j.at("steps")) {
            Step step;
            const auto kind = s.at(0).get<std::string>();
            bool known = false;
            for (auto k = static_cast<int>(Step::Kind::join); k <= static_cast<int>(Step::Kind::fail_commit); ++k) {
                if (to_string(static_cast<Step::Kind>(k)) == kind) {
                    step.kind = static_cast<Step::Kind>(k);
                    known = true;
                }
            }
            if (!known) throw std::invalid_argument("krmx::testing::Schedule: unknown step '" + kind + "'");
            step.player = s.at(1).get<std::size_t>();
            step.event = s.at(2);
            step.amount = s.at(3).get<std::int64_t>();
            schedule.steps.push_back(std::move(step));
        }
        return schedule;
    }
};

/// What a check found wrong with one schedule.
struct SimulationFailure {
    std::string check;    ///< convergence, refusal, lost, determinism, invariant, error
    std::string message;  ///< what, where, the first difference
    std::size_t step = 0;  ///< the step after which it was found (steps.size(): at the end)
};

struct SimulationReport {
    std::size_t schedules = 0;       ///< schedules run (up to and including the first failure)
    std::size_t events = 0;          ///< events dispatched in them
    std::size_t shrink_runs = 0;     ///< schedules run to shrink the failure
    std::size_t confirmed = 0;       ///< events the server had confirmed at the end of each schedule
    std::size_t restarts = 0;        ///< server restarts from the store
    std::size_t failed_commits = 0;  ///< commits the store refused
    std::size_t offline = 0;         ///< players' events not sent: the player was not linked
    std::size_t refused_locally = 0;  ///< players' events their own client refused (not sent)
    std::optional<SimulationFailure> failure;  ///< of the shrunk schedule
    std::optional<Schedule> original;          ///< the schedule that failed, as generated
    std::optional<Schedule> shrunk;            ///< the smallest found that fails the same check

    [[nodiscard]] bool ok() const noexcept { return !failure.has_value(); }
    [[nodiscard]] std::string str() const {
        if (!failure) {
            return "krmx::testing::Simulator: " + std::to_string(schedules) + " schedules, " + std::to_string(events) +
                   " events (" + std::to_string(offline) + " while offline, " + std::to_string(refused_locally) +
                   " refused by the player's client), " + std::to_string(confirmed) + " confirmed, " + std::to_string(restarts) +
                   " restarts, " + std::to_string(failed_commits) + " failed commits: every check held\n";
        }
        std::string out = "krmx::testing::Simulator: schedule " + std::to_string(schedules) + " of the run (seed " +
                          std::to_string(original->seed) + ") failed the " + failure->check + " check:\n  " +
                          failure->message + "\n";
        const auto size = [](const Schedule& s) {
            const auto count = [](std::size_t n, std::string_view what) {
                return std::to_string(n) + " " + std::string{what} + (n == 1 ? "" : "s");
            };
            return count(s.players().size(), "player") + ", " + count(s.events(), "event") + ", " +
                   count(s.steps.size(), "step");
        };
        out += "shrunk from " + size(*original) + " to " + size(*shrunk) + " (found after step " +
               std::to_string(failure->step) + "):\n";
        out += shrunk->str();
        out += "replay it: simulator.replay(krmx::testing::Schedule::from_json(nlohmann::json::parse(R\"(" +
               shrunk->to_json().dump() + ")\"))), or the original: simulator.run_seed(" +
               std::to_string(original->seed) + ")\n";
        return out;
    }
};

namespace detail {

// A journal whose next commit can be made to fail, around the real one.
struct CommitFaults {
    bool fail_next = false;
    std::uint64_t failed = 0;  // commits refused so far
};

class FlakyJournal final : public DomainJournal {
  public:
    FlakyJournal(std::unique_ptr<DomainJournal> inner, std::shared_ptr<CommitFaults> faults)
        : inner_(std::move(inner)), faults_(std::move(faults)) {}
    void restore(const std::function<void(RecordedEvent&)>& load) override { inner_->restore(load); }
    void commit(std::span<const CommitEvent> batch, CommitDone done) override {
        if (std::exchange(faults_->fail_next, false)) {
            ++faults_->failed;
            done("the store refused the commit (simulated)");
            return;
        }
        inner_->commit(batch, std::move(done));
    }

  private:
    std::unique_ptr<DomainJournal> inner_;
    std::shared_ptr<CommitFaults> faults_;
};

inline std::uint64_t mix_seed(std::uint64_t x) {  // splitmix64: one good seed per schedule from the run's
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

}  // namespace detail

/// How wild the schedules are. Probabilities are per step.
struct SimulationOptions {
    std::size_t min_players = 2;
    std::size_t max_players = 4;
    std::size_t min_steps = 10;
    std::size_t max_steps = 40;
    std::int64_t max_latency_ms = 40;
    /// The clients' optimistic expiry (StreamClientOptions::optimistic_seconds).
    double optimistic_seconds = 0.5;
    bool disconnects = true;      ///< drop, unlink and relink steps
    bool restarts = true;         ///< server restarts from the store
    bool commit_failures = true;  ///< commits the store refuses
    /// Also replay with the state rebuilt from its JSON before each event (needs to_json and from_json).
    bool replay_through_json = true;
    /// Give up shrinking after this many runs.
    std::size_t max_shrink_runs = 5000;
};

namespace detail {

// What differs between simulating a StreamModel and a ProjectionModel: the server's domain, the players'
// clients, what a player sees (the state, or its view), and what it means for a client to have converged.
template <class Model>
struct Simulated;

template <class S>
struct Simulated<StreamModel<S>> {
    using State = S;
    using View = S;
    using Domain = StreamDomain<S>;
    using Client = StreamClient<S>;
    static constexpr std::string_view name = "Simulator";
    static const StreamModel<S>& actions(const StreamModel<S>& model) { return model; }
    static const S& view(const StreamModel<S>&, const S& state, std::string_view) { return state; }
    static void open(std::optional<Domain>& domain, Hub& hub, const StreamModel<S>& model, Durability durability) {
        domain.emplace(hub, "game", model, StreamDomainOptions{.durability = std::move(durability)});
    }
    static std::unique_ptr<Client> client(ClientEndpoint& endpoint, const StreamModel<S>& model,
                                          const SimulationOptions& options) {
        return std::make_unique<Client>(endpoint, "game", model,
                                        StreamClientOptions{.optimistic_seconds = options.optimistic_seconds});
    }
    // Why `client` has not converged to `domain` (empty: it has).
    static std::string divergence(const StreamModel<S>&, const Domain& domain, const Client& client,
                                  std::string_view name) {
        const std::string who{name};
        if (client.sync_status() != SyncStatus::synced)
            return who + " is " + std::string{to_string(client.sync_status())} + ", not synced";
        if (client.confirmed_size() != domain.confirmed_size() || client.pending_count() != 0) {
            return who + " holds " + std::to_string(client.confirmed_size()) + " confirmed and " +
                   std::to_string(client.pending_count()) + " pending events; the server " +
                   std::to_string(domain.confirmed_size());
        }
        if (const auto d = difference(domain.state(), client.state()); d && !d->empty()) {
            return who + "'s state is not the server's after the same " + std::to_string(client.confirmed_size()) +
                   " events (does the client run other rules?); first difference, server against client: " + *d;
        }
        return {};
    }
};

template <class S, class V>
struct Simulated<ProjectionModel<S, V>> {
    using State = S;
    using View = V;
    using Domain = ProjectionDomain<S, V>;
    using Client = ProjectionClient<S, V>;
    static constexpr std::string_view name = "ProjectionSimulator";
    static const StreamModel<S>& actions(const ProjectionModel<S, V>& model) { return model.actions(); }
    static V view(const ProjectionModel<S, V>& model, const S& state, std::string_view user) {
        return model.view(state, user);
    }
    static void open(std::optional<Domain>& domain, Hub& hub, const ProjectionModel<S, V>& model,
                     Durability durability) {
        domain.emplace(hub, "game", model, ProjectionDomainOptions{.durability = std::move(durability)});
    }
    static std::unique_ptr<Client> client(ClientEndpoint& endpoint, const ProjectionModel<S, V>& model,
                                          const SimulationOptions&) {
        return std::make_unique<Client>(endpoint, "game", model);
    }
    static std::string divergence(const ProjectionModel<S, V>& model, const Domain& domain, const Client& client,
                                  std::string_view name) {
        const std::string who{name};
        if (!client.has_view()) return who + " has no view";
        if (client.out_of_sync()) return who + " is out of sync (a delta did not fit its view)";
        if (client.pending_count() != 0) {
            return who + " still waits for the server's answer to " + std::to_string(client.pending_count()) +
                   " action(s)";
        }
        const V expected = model.view(domain.state(), name);
        if (const auto d = difference(expected, client.view()); d && !d->empty()) {
            return who + "'s view is not what the server's state shows it (does the client run other optimistic "
                         "handlers, or does a delta go wrong?); first difference, server against client: " +
                   *d;
        }
        return {};
    }
};

}  // namespace detail

template <class Model, class StoreFixture = MemoryStoreFixture>
class BasicSimulator {
    using Kind = detail::Simulated<Model>;
    using State = typename Kind::State;
    using View = typename Kind::View;
    static_assert(EventStoreFixture<StoreFixture>,
                  "krmx::testing::Simulator<State, StoreFixture>: the fixture is default constructible, its open() "
                  "gives a krmx::EventStore by reference, reopen() restarts it on the same data and close() closes "
                  "it (krmx/testing/store_fixture.hpp): the fixtures of the store contract suites serve");

  public:
    /// `generate(Random&, const View&, std::string_view player)` returns the event the player tries next
    /// (anything nlohmann::json takes: a TypedEvent, JSON), or null for none. The View is what the player
    /// sees: the state for a StreamModel, its view for a ProjectionModel.
    using Generator = std::function<nlohmann::json(Random&, const View&, std::string_view)>;
    using ServerGenerator = std::function<nlohmann::json(Random&, const State&)>;

    explicit BasicSimulator(const Model& model, SimulationOptions options = {})
        : model_(model), client_model_(model), options_(options) {}

    BasicSimulator& players(std::size_t min, std::size_t max) {
        options_.min_players = std::max<std::size_t>(1, min);
        options_.max_players = std::max(options_.min_players, max);
        return *this;
    }
    BasicSimulator& steps(std::size_t min, std::size_t max) {
        options_.min_steps = min;
        options_.max_steps = std::max(min, max);
        return *this;
    }
    BasicSimulator& options(SimulationOptions options) {
        options_ = options;
        return *this;
    }
    template <class F>
    BasicSimulator& generate(F generator) {
        static_assert(std::invocable<F&, Random&, const View&, std::string_view>,
                      "krmx::testing::Simulator::generate: the generator is called as (krmx::testing::Random&, "
                      "const State& (a ProjectionModel's: const View&), std::string_view player) and returns the "
                      "event (a TypedEvent or JSON)");
        generate_ = [g = std::move(generator)](Random& r, const View& s, std::string_view p) -> nlohmann::json {
            return nlohmann::json(g(r, s, p));
        };
        return *this;
    }
    /// Events server code dispatches now and then ("<server>"), with probability `p` per step.
    template <class F>
    BasicSimulator& server_events(F generator, double p = 0.05) {
        static_assert(std::invocable<F&, Random&, const State&>,
                      "krmx::testing::Simulator::server_events: the generator is called as "
                      "(krmx::testing::Random&, const State&) and returns the event (a TypedEvent or JSON)");
        server_generate_ = [g = std::move(generator)](Random& r, const State& s) -> nlohmann::json {
            return nlohmann::json(g(r, s));
        };
        server_chance_ = p;
        return *this;
    }
    /// A rule of the game: `holds(const State&)` on the server after every step, and on every client at the
    /// end (a StreamModel's; a ProjectionModel's clients hold views).
    template <class F>
    BasicSimulator& invariant(std::string name, F holds) {
        static_assert(std::predicate<F&, const State&>,
                      "krmx::testing::Simulator::invariant: the invariant is a predicate (const State&) -> bool");
        invariants_.push_back({std::move(name), std::move(holds)});
        return *this;
    }
    /// The model the clients run, when it is not the server's (to find out what a difference breaks).
    BasicSimulator& client_model(const Model& model) {
        client_model_ = model;
        return *this;
    }

    /// Runs `schedules` schedules made from `seed`; stops at the first failure and shrinks it.
    [[nodiscard]] SimulationReport run(std::size_t schedules, std::uint64_t seed = 1) {
        SimulationReport report;
        for (std::size_t i = 0; i < schedules; ++i) {
            auto schedule = make_schedule(detail::mix_seed(seed + i));
            ++report.schedules;
            report.events += schedule.events();
            if (auto failure = replay(schedule, report)) {
                report.original = schedule;
                shrink(report, std::move(schedule), std::move(*failure));
                return report;
            }
        }
        return report;
    }
    /// Makes and runs the schedule of one seed (as printed by a failure's report), shrinking a failure.
    [[nodiscard]] SimulationReport run_seed(std::uint64_t schedule_seed) {
        SimulationReport report;
        auto schedule = make_schedule(schedule_seed);
        report.schedules = 1;
        report.events = schedule.events();
        if (auto failure = replay(schedule, report)) {
            report.original = schedule;
            shrink(report, std::move(schedule), std::move(*failure));
        }
        return report;
    }

    /// The schedule one seed makes.
    [[nodiscard]] Schedule make_schedule(std::uint64_t seed) const {
        if (!generate_) throw std::logic_error("krmx::testing::Simulator: no generate(): which events do players try?");
        Random r{seed};
        Schedule schedule{seed, {}};
        const auto players = static_cast<std::size_t>(
            r.between(static_cast<std::int64_t>(options_.min_players), static_cast<std::int64_t>(options_.max_players)));
        const auto count = static_cast<std::size_t>(
            r.between(static_cast<std::int64_t>(options_.min_steps), static_cast<std::int64_t>(options_.max_steps)));
        Stream<State> shadow{Kind::actions(model_)};  // the server as the generator imagines it: every event in order
        std::vector<std::size_t> joined;
        std::vector<std::size_t> waiting;
        std::set<std::size_t> offline;  // as the steps so far leave them: players come back, mostly
        for (std::size_t p = 0; p < players; ++p) waiting.push_back(p);
        auto add = [&](Step::Kind kind, std::size_t player, nlohmann::json event = nullptr, std::int64_t amount = 0) {
            schedule.steps.push_back({kind, player, std::move(event), amount});
        };
        while (schedule.steps.size() < count) {
            if (!waiting.empty() && (joined.empty() || r.chance(0.25))) {
                const auto at = r.below(waiting.size());
                const auto p = waiting[at];
                waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(at));
                joined.push_back(p);
                add(Step::Kind::join, p, nullptr, r.between(0, options_.max_latency_ms));
                // Mostly long enough for the link to be accepted: a player that is not linked cannot play.
                if (r.chance(0.7)) add(Step::Kind::advance, 0, nullptr, 2 * options_.max_latency_ms + 1);
                continue;
            }
            const auto roll = r.below(100);
            const auto p = r.pick(joined);
            if (server_generate_ && r.chance(server_chance_)) {
                auto event = server_generate_(r, shadow.state());
                if (!event.is_null()) {
                    (void)shadow.dispatch(server_dispatcher, event);
                    add(Step::Kind::server_dispatch, 0, std::move(event));
                }
            } else if (roll < 50) {
                if (offline.contains(p) && r.chance(0.8)) {
                    offline.erase(p);
                    add(Step::Kind::relink, p);
                    if (r.chance(0.7)) add(Step::Kind::advance, 0, nullptr, 2 * options_.max_latency_ms + 1);
                    continue;
                }
                auto event = generate_(r, Kind::view(model_, shadow.state(), player_name(p)), player_name(p));
                if (!event.is_null()) {
                    (void)shadow.dispatch(player_name(p), event);
                    add(Step::Kind::dispatch, p, std::move(event));
                }
            } else if (roll < 72) {
                add(Step::Kind::deliver, 0, nullptr, r.between(1, 8));
            } else if (roll < 82) {
                // Now and then long enough for optimistic events without an answer to expire.
                const auto expiry = static_cast<std::int64_t>(options_.optimistic_seconds * 1000) + 1;
                add(Step::Kind::advance, 0, nullptr,
                    r.chance(0.1) ? expiry : r.between(1, 2 * options_.max_latency_ms + 1));
            } else if (options_.disconnects && roll < 86) {
                offline.insert(p);
                add(Step::Kind::drop, p);
            } else if (options_.disconnects && roll < 89) {
                offline.insert(p);
                add(r.chance(0.5) ? Step::Kind::unlink : Step::Kind::leave, p);
            } else if (options_.disconnects && roll < 95) {
                offline.erase(p);
                add(Step::Kind::relink, p);
            } else if (options_.restarts && roll < 97) {
                offline.insert(joined.begin(), joined.end());
                add(Step::Kind::restart, 0);
            } else if (options_.commit_failures && roll < 100) {
                add(Step::Kind::fail_commit, 0);
            }
        }
        return schedule;
    }

    [[nodiscard]] const SimulationOptions& current_options() const noexcept { return options_; }

    /// Runs one schedule exactly; the failure it finds, if any.
    [[nodiscard]] std::optional<SimulationFailure> replay(const Schedule& schedule) const {
        SimulationReport ignored;
        return replay(schedule, ignored);
    }

  private:
    // Runs one schedule, adding what it did to `tally` (confirmed events, restarts, failed commits).
    [[nodiscard]] std::optional<SimulationFailure> replay(const Schedule& schedule, SimulationReport& tally) const {
        try {
            Game game{*this};
            auto failure = game.play(schedule);
            game.tally(tally);
            return failure;
        } catch (const std::exception& e) {
            return SimulationFailure{"error", std::string{"the run threw: "} + e.what(), schedule.steps.size()};
        }
    }

    struct Invariant {
        std::string name;
        std::function<bool(const State&)> holds;
    };

    // One schedule's world: the hub, the store, the domain and the players' clients.
    class Game {
      public:
        explicit Game(const BasicSimulator& sim) : sim_(sim), faults_(std::make_shared<detail::CommitFaults>()) {
            open_domain();
            delivered_ = hub_.on_delivery([this](const Delivery& d) {
                if (d.to_server && d.kind == Delivery::Kind::message) after_server_handled(d.text);
            });
        }

        void tally(SimulationReport& report) const {
            report.confirmed += domain_ ? domain_->confirmed_size() : 0;
            report.restarts += restarts_;
            report.failed_commits += faults_->failed;
            report.offline += offline_;
            report.refused_locally += refused_locally_;
        }

        std::optional<SimulationFailure> play(const Schedule& schedule) {
            for (step_ = 0; step_ < schedule.steps.size() && !failure_; ++step_) {
                run_step(schedule.steps[step_]);
                if (failure_) break;
                record_confirmed();
                check_invariants(domain_->state(), "the server");
            }
            if (failure_) return failure_;
            step_ = schedule.steps.size();
            finish();
            return failure_;
        }

      private:
        struct Player {
            ClientEndpoint* endpoint = nullptr;
            std::unique_ptr<typename Kind::Client> client;
            std::size_t recorded = 0;  // confirmed positions of this client already compared
            bool linking = false;      // a link request is on its way: a player does not ask twice
            Subscription linked, rejected;

            void link() {
                if (endpoint->linked() || linking) return;
                linking = true;
                endpoint->link();
            }
            void drop() {
                linking = false;
                endpoint->drop();
            }
        };

        void open_domain() {
            auto inner = krmx::durable(store_.open(), {.commits = Commits::synchronous});
            Durability flaky{[inner, faults = faults_](std::string_view domain, const EventLoop& loop) {
                return std::unique_ptr<DomainJournal>(
                    std::make_unique<detail::FlakyJournal>(inner.open(domain, loop), faults));
            }};
            Kind::open(domain_, hub_, sim_.model_, std::move(flaky));
            last_size_ = domain_->size();
            last_print_ = detail::Snapshot<State>{domain_->state()};
            last_failed_ = faults_->failed;
        }

        Player* player(std::size_t index) {
            const auto it = players_.find(index);
            return it == players_.end() ? nullptr : &it->second;
        }

        void run_step(const Step& s) {
            switch (s.kind) {
                case Step::Kind::join: {
                    if (player(s.player)) return;
                    auto& p = players_[s.player];
                    p.endpoint = &hub_.connect(player_name(s.player), std::chrono::milliseconds{std::max<std::int64_t>(0, s.amount)});
                    p.endpoint->keep_received(false);
                    p.client = Kind::client(*p.endpoint, sim_.client_model_, sim_.options_);
                    p.linked = p.endpoint->on_link([&p](std::string_view) { p.linking = false; });
                    p.rejected = p.endpoint->session().on_rejected([&p](std::string_view) { p.linking = false; });
                    p.link();
                    return;
                }
                case Step::Kind::dispatch:
                    if (auto* p = player(s.player); p && p->client->linked()) {
                        if (!p->client->dispatch(s.event)) ++refused_locally_;
                    } else {
                        ++offline_;
                    }
                    return;
                case Step::Kind::server_dispatch: {
                    (void)domain_->dispatch(server_dispatcher, s.event);
                    after_server_handled(detail::dump(s.event));
                    return;
                }
                case Step::Kind::deliver:
                    for (std::int64_t i = 0; i < s.amount && hub_.step(); ++i) {
                    }
                    return;
                case Step::Kind::advance:
                    hub_.advance(std::chrono::milliseconds{std::max<std::int64_t>(0, s.amount)});
                    return;
                case Step::Kind::drop:
                    if (auto* p = player(s.player)) p->drop();
                    return;
                case Step::Kind::unlink:
                    if (auto* p = player(s.player); p && p->endpoint->linked()) p->endpoint->unlink();
                    return;
                case Step::Kind::leave:
                    if (auto* p = player(s.player); p && p->endpoint->linked()) p->endpoint->leave();
                    return;
                case Step::Kind::relink:
                    if (auto* p = player(s.player)) p->link();
                    return;
                case Step::Kind::restart:
                    restart();
                    return;
                case Step::Kind::fail_commit:
                    faults_->fail_next = true;
                    return;
            }
        }

        void restart() {
            ++restarts_;
            domain_.reset();
            for (auto& [index, p] : players_) p.drop();
            store_.reopen();
            try {
                open_domain();
            } catch (const std::exception& e) {
                fail("restart", std::string{"the domain could not restore from its store: "} + e.what());
            }
        }

        // After the server handled a message: a refusal (the stream did not grow) must leave the state as it was.
        void after_server_handled(std::string_view text) {
            if (!domain_ || failure_) return;
            const auto size = domain_->size();
            const bool taken_back = faults_->failed != last_failed_;
            const auto changed = last_print_.difference(domain_->state());
            if (size == last_size_ && changed && !changed->empty()) {
                if (taken_back) {
                    // A failed commit took the event back: the state was rebuilt by replaying the events before it.
                    fail("determinism", "the store refused the commit of " + detail::clip(std::string{text}) +
                                            "; taking it back replayed the events before it and gave another state "
                                            "than they gave live: handlers must be deterministic (no clocks, random "
                                            "numbers or globals); first difference, live against replayed: " +
                                            *changed);
                } else {
                    fail("refusal", "the server refused " + detail::clip(std::string{text}) +
                                        " but its state changed (a handler wrote before it refused, through something "
                                        "a roll back does not restore, such as a shared pointer); first difference: " +
                                        *changed);
                }
                return;
            }
            last_size_ = size;
            last_print_ = detail::Snapshot<State>{domain_->state()};
            last_failed_ = faults_->failed;
        }

        // What was confirmed must never change: the server's word is final. A StreamModel's clients hold the
        // confirmed events; a ProjectionModel's clients hold views, so there it is what the server confirmed.
        void record_confirmed() {
            if constexpr (std::is_same_v<typename Kind::Client, StreamClient<State>>) {
                for (auto& [index, p] : players_) record(p.client->stream().confirmed_log(), p.recorded, player_name(index));
            } else {
                if (domain_) record(domain_->stream().log(), server_recorded_, "the server", domain_->confirmed_size());
            }
        }

        void record(const Log& log, std::size_t& recorded, const std::string& by,
                    std::optional<std::size_t> confirmed = std::nullopt) {
            const auto size = confirmed.value_or(log.size());
            if (size < recorded) recorded = 0;  // rebuilt: compare it all again
            for (std::size_t i = recorded; i < size; ++i) {
                const auto entry = log[i];
                std::string text = std::string{entry.dispatcher()} + " " + detail::dump(entry.event_json());
                const auto [it, inserted] = confirmed_.try_emplace(i, Seen{text, by, step_});
                if (!inserted && it->second.text != text) {
                    fail("lost", by + " holds " + text + " confirmed at position " + std::to_string(i) + ", where " +
                                     it->second.by + " saw " + it->second.text + " confirmed after step " +
                                     std::to_string(it->second.step) + ": a confirmed event was replaced");
                    return;
                }
            }
            recorded = size;
        }

        void check_invariants(const State& state, std::string_view whose) {
            for (const auto& inv : sim_.invariants_) {
                if (failure_) return;
                bool holds = false;
                try {
                    holds = inv.holds(state);
                } catch (const std::exception& e) {
                    fail("invariant", "the invariant '" + inv.name + "' threw on " + std::string{whose} + "'s state: " + e.what());
                    return;
                }
                if (!holds) {
                    fail("invariant", "the invariant '" + inv.name + "' does not hold on " + std::string{whose} +
                                          "'s state: " + detail::describe(state));
                }
            }
        }

        // Everyone links, everything arrives, pending events expire; then every check.
        void finish() {
            hub_.run_until_idle();
            for (auto& [index, p] : players_) p.link();
            hub_.run_until_idle();
            hub_.advance(std::chrono::milliseconds{static_cast<std::int64_t>(sim_.options_.optimistic_seconds * 1000) + 1});
            hub_.run_until_idle();
            record_confirmed();
            if (failure_) return;
            check_lost();
            if (failure_) return;
            check_convergence();
            if (failure_) return;
            check_replay();
        }

        void check_lost() {
            for (const auto& [position, seen] : confirmed_) {
                if (position >= domain_->confirmed_size()) {
                    fail("lost", seen.by + " saw " + seen.text + " confirmed at position " + std::to_string(position) +
                                     " after step " + std::to_string(seen.step) + "; the server's stream now ends at " +
                                     std::to_string(domain_->confirmed_size()) + ": a confirmed event was lost");
                    return;
                }
                const auto entry = domain_->stream().log()[position];
                const auto text = std::string{entry.dispatcher()} + " " + detail::dump(entry.event_json());
                if (text != seen.text) {
                    fail("lost", seen.by + " saw " + seen.text + " confirmed at position " + std::to_string(position) +
                                     " after step " + std::to_string(seen.step) + "; the server now has " + text);
                    return;
                }
            }
        }

        void check_convergence() {
            for (auto& [index, p] : players_) {
                const auto name = player_name(index);
                if (!p.endpoint->linked()) {
                    fail("convergence", name + " could not link again at the end");
                    return;
                }
                if (auto why = Kind::divergence(sim_.client_model_, *domain_, *p.client, name); !why.empty()) {
                    fail("convergence", std::move(why));
                    return;
                }
                if constexpr (std::is_same_v<typename Kind::Client, StreamClient<State>>) {
                    check_invariants(p.client->state(), name);
                    if (failure_) return;
                }
            }
        }

        void check_replay() {
            std::vector<Dispatched> events;
            for (const auto& record : store_.open().read_all())
                events.push_back({record.dispatcher, detail::event_json(record)});
            if (events.size() != domain_->size()) {
                fail("lost", "the store holds " + std::to_string(events.size()) + " events, the server's stream " +
                                 std::to_string(domain_->size()));
                return;
            }
            // A ProjectionModel's state may have no JSON and no ==: then what each player sees is compared.
            std::function<std::string(const State&, const State&)> views;
            if constexpr (!std::is_same_v<typename Kind::Client, StreamClient<State>>) {
                views = [this](const State& live, const State& replayed) -> std::string {
                    for (const auto& [index, p] : players_) {
                        const auto name = player_name(index);
                        const auto d = detail::difference(Kind::view(sim_.model_, live, name),
                                                          Kind::view(sim_.model_, replayed, name));
                        if (d && !d->empty()) return "what " + name + " sees differs: " + *d;
                    }
                    return {};
                };
            }
            if (auto problem = detail::replay_problem(Kind::actions(sim_.model_), events, domain_->state(),
                                                      sim_.options_.replay_through_json, views);
                !problem.empty()) {
                fail("determinism", "the stored log: " + problem);
            }
        }

        void fail(std::string check, std::string message) {
            if (!failure_) failure_ = SimulationFailure{std::move(check), std::move(message), step_};
        }

        struct Seen {
            std::string text;
            std::string by;
            std::size_t step;
        };

        const BasicSimulator& sim_;
        std::shared_ptr<detail::CommitFaults> faults_;
        StoreFixture store_;
        Hub hub_;
        std::optional<typename Kind::Domain> domain_;
        std::map<std::size_t, Player> players_;
        std::map<std::size_t, Seen> confirmed_;
        std::size_t last_size_ = 0;
        detail::Snapshot<State> last_print_;
        std::uint64_t last_failed_ = 0;
        std::size_t restarts_ = 0;
        std::size_t server_recorded_ = 0;
        std::size_t offline_ = 0;
        std::size_t refused_locally_ = 0;
        std::size_t step_ = 0;
        std::optional<SimulationFailure> failure_;
        Subscription delivered_;
    };

    // Fewest players first, then fewest steps, keeping the same check failing.
    void shrink(SimulationReport& report, Schedule schedule, SimulationFailure failure) const {
        auto still_fails = [&](const Schedule& candidate) -> std::optional<SimulationFailure> {
            if (report.shrink_runs >= options_.max_shrink_runs) return std::nullopt;
            ++report.shrink_runs;
            auto f = replay(candidate);
            if (f && f->check == failure.check) return f;
            return std::nullopt;
        };
        for (bool progress = true; progress;) {
            progress = false;
            for (const auto p : schedule.players()) {
                Schedule candidate{schedule.seed, {}};
                for (const auto& s : schedule.steps) {
                    if (!s.of_player() || s.player != p) candidate.steps.push_back(s);
                }
                if (auto f = still_fails(candidate)) {
                    schedule = std::move(candidate);
                    failure = std::move(*f);
                    progress = true;
                    break;
                }
            }
            if (progress) continue;
            for (std::size_t chunk = std::max<std::size_t>(1, schedule.steps.size() / 2); chunk >= 1; chunk /= 2) {
                for (std::size_t at = 0; at < schedule.steps.size();) {
                    Schedule candidate = schedule;
                    const auto end = std::min(schedule.steps.size(), at + chunk);
                    candidate.steps.erase(candidate.steps.begin() + static_cast<std::ptrdiff_t>(at),
                                          candidate.steps.begin() + static_cast<std::ptrdiff_t>(end));
                    if (auto f = still_fails(candidate)) {
                        schedule = std::move(candidate);
                        failure = std::move(*f);
                        progress = true;
                    } else {
                        at += chunk;
                    }
                }
                if (chunk == 1) break;
            }
        }
        report.failure = std::move(failure);
        report.shrunk = std::move(schedule);
    }

    Model model_;
    Model client_model_;
    SimulationOptions options_;
    Generator generate_;
    ServerGenerator server_generate_;
    double server_chance_ = 0;
    std::vector<Invariant> invariants_;
};

/// The simulator of a StreamModel game: `Simulator<Counter>{counter::model()}`.
template <class State, class StoreFixture = MemoryStoreFixture>
using Simulator = BasicSimulator<StreamModel<State>, StoreFixture>;
/// The simulator of a ProjectionModel game (hidden information): the server runs a ProjectionDomain, each
/// player a ProjectionClient; a client has converged when its view is what the server's state shows it.
template <class State, class View, class StoreFixture = MemoryStoreFixture>
using ProjectionSimulator = BasicSimulator<ProjectionModel<State, View>, StoreFixture>;

}  // namespace krmx::testing

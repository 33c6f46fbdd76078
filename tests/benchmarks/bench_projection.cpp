// Projection rooms: 100 rooms of 8 players, each room a ProjectionDomain with an audience, each player a
// per-player view (its own score and its last secret moves, everyone's scores, the round). One action is a
// `projection/action` frame read by the Krmx session, routed by the host, applied, and answered with a
// jsondiffpatch delta of each member's view, serialised and handed to its connection. The reference runs
// the same model on @krmx/state's ProjectionServer (its `diff` per user) with JSON.parse of the action and
// JSON.stringify of each delta (tests/benchmarks/reference/bench.mjs, projection_rooms). It runs twice: with
// the view defined by KRMX_DEFINE_VIEW (BM_projection_rooms) and through its JSON tree (..._tree_view).
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <krmx/core/define_view.hpp>
#include <krmx/net/session.hpp>
#include <krmx/stream/projection_model.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/projection_domain.hpp>

#include "bench_common.hpp"
#include "counting_sink.hpp"

namespace projection_bench {

struct Player {
    int score = 0;
    std::vector<int> secret;  // the last 8 moves: only its owner sees them
};

struct Scores {
    std::map<std::string, Player> players;
    int round = 0;
};

// The view, defined with KRMX_DEFINE_VIEW: the domain writes it without a JSON tree.
struct PlayerView {
    int score = 0;
    std::vector<int> secret;
};
KRMX_DEFINE_VIEW(PlayerView, score, secret)
struct ScoresView {
    PlayerView you;
    std::map<std::string, int> scores;
    int round = 0;
};
KRMX_DEFINE_VIEW(ScoresView, you, scores, round)

// The same view, through its JSON tree (as a view defined with nlohmann's macro is): a type whose to_json is
// the view's, which the domain builds and copies onto the tape.
struct TreeScoresView {
    ScoresView view;
};
inline void to_json(nlohmann::json& j, const TreeScoresView& v) { j = v.view; }

ScoresView view_of(const Scores& s, std::string_view user) {
    ScoresView v;
    if (const auto it = s.players.find(std::string{user}); it != s.players.end())
        v.you = {it->second.score, it->second.secret};
    for (const auto& [name, p] : s.players) v.scores[name] = p.score;
    v.round = s.round;
    return v;
}

inline constexpr krmx::EventType<int> move{"move"};

template <class View>
const krmx::ProjectionModel<Scores, View>& model() {
    static const auto m =
        krmx::ProjectionModel<Scores, View>{Scores{}, [](const Scores& s, std::string_view user) { return View{view_of(s, user)}; }}
            .when(move, [](Scores& s, std::string_view by, int n) {
                auto& p = s.players[std::string{by}];
                p.score += n;
                p.secret.push_back(n);
                if (p.secret.size() > 8) p.secret.erase(p.secret.begin());
                ++s.round;
            });
    return m;
}

constexpr int rooms = 100;
constexpr int players_per_room = 8;

template <class View>
struct Server {
    Server() {
        for (int r = 0; r < rooms; ++r) {
            domains.push_back(std::make_unique<krmx::ProjectionDomain<Scores, View>>(
                host, "room-" + std::to_string(r), model<View>(), krmx::ProjectionDomainOptions{.audience = krmx::Audience::members}));
            for (int p = 0; p < players_per_room; ++p) {
                const auto user = "p" + std::to_string(r) + "-" + std::to_string(p);
                (void)domains.back()->admit(user);
                connections.push_back(session.connect());
                session.receive(connections.back(),
                                R"({"type":"krmx/link","payload":{"username":")" + user + R"(","version":"0.5.4"}})");
                actions.push_back(R"({"type":"projection/action","payload":{"domain":"room-)" + std::to_string(r) +
                                  R"(","action":{"type":"move","payload":)" + std::to_string(1 + p) +
                                  R"(},"optimisticId":"opt0-5b1c2e7a-8d0f-4c61-9a3e-)" + std::to_string(100000 + r * 10 + p) +
                                  R"("}})");
            }
        }
        // Everyone moves once, so that every view lists the room's eight players.
        for (std::size_t i = 0; i < connections.size(); ++i) session.receive(connections[i], actions[i]);
    }
    [[nodiscard]] std::uint64_t accepted() const {
        std::uint64_t n = 0;
        for (const auto& d : domains) n += d->statistics().accepted;
        return n;
    }

    CountingSink sink;
    krmx::net::Session session{sink};
    krmx::DomainHost host{session};
    std::vector<std::unique_ptr<krmx::ProjectionDomain<Scores, View>>> domains;
    std::vector<krmx::net::ConnectionId> connections;
    std::vector<std::string> actions;
};

// Actions go round the rooms (room after room, each time the next player), so that every room stays busy.
template <class View>
void BM_projection_rooms(benchmark::State& state) {
    Server<View> server;
    const std::uint64_t before = server.accepted();
    const std::uint64_t frames_before = server.sink.frames;  // not the links' and the first moves'
    const std::uint64_t bytes_before = server.sink.bytes;
    std::uint64_t computed_before = 0;
    for (const auto& d : server.domains) computed_before += d->projection_statistics().deltas_computed;
    std::size_t next = 0;
    const std::size_t total = server.connections.size();
    for (auto _ : state) {
        const std::size_t room = next % rooms;
        const std::size_t player = (next / rooms) % players_per_room;
        const std::size_t i = room * players_per_room + player;
        server.session.receive(server.connections[i], server.actions[i]);
        ++next;
        if (next == total * 64) next = 0;
    }
    const auto accepted = server.accepted() - before;
    if (accepted != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("actions were refused");
    state.SetItemsProcessed(static_cast<std::int64_t>(accepted));
    const auto per_action = [&](std::uint64_t n) { return static_cast<double>(n) / static_cast<double>(std::max<std::uint64_t>(accepted, 1)); };
    state.counters["frames_per_action"] = per_action(server.sink.frames - frames_before);
    state.counters["bytes_per_frame"] = static_cast<double>(server.sink.bytes - bytes_before) /
                                        static_cast<double>(std::max<std::uint64_t>(server.sink.frames - frames_before, 1));
    std::uint64_t computed = 0;
    for (const auto& d : server.domains) computed += d->projection_statistics().deltas_computed;
    state.counters["deltas_per_action"] = per_action(computed - computed_before);
}
BENCHMARK(BM_projection_rooms<ScoresView>)->Name("BM_projection_rooms")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_projection_rooms<TreeScoresView>)->Name("BM_projection_rooms_tree_view")->Unit(benchmark::kMicrosecond);

}  // namespace projection_bench

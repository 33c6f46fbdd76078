// Your game against everything a network and a server can do to it: seeded schedules of players who join
// late, lag, drop and relink, a server that restarts from its store and a store that refuses commits, all
// through the real server and clients. After each schedule every client must hold the server's state, no
// confirmed event may be lost, the stored log must replay to the same state, and the game's own invariants
// must hold. A failure prints its seed and a shrunk schedule that replays exactly.
//
//   simulate            2 000 schedules from seed 1
//   simulate N SEED     N schedules from SEED

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <krmx/testing/simulator.hpp>

#include "claimable_counter/counter.hpp"

int main(int argc, char** argv) {
    const auto schedules = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000;
    const auto seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;

    auto simulator =
        krmx::testing::Simulator<Counter>{counter::model()}
            .players(2, 4)
            // What a player tries next, given the state as the game is in it (a valid move, mostly).
            .generate([](krmx::testing::Random& r, const Counter& c, std::string_view player) -> nlohmann::json {
                if (r.chance(0.2)) return c.claim == player ? counter::release() : counter::claim();
                return counter::increment(static_cast<int>(r.between(-5, 5)));
            })
            .invariant("only a player holds the claim", [](const Counter& c) { return !c.claim || !c.claim->empty(); });

    const auto report = simulator.run(schedules, seed);
    std::printf("%s", report.str().c_str());
    return report.ok() ? 0 : 1;
}

#pragma once
// A simulated player of the claimable counter (krmx::testing::Simulator's generator): claims, releases and
// increments, as the tests and the simulator's benchmark play it.

#include <string_view>

#include <nlohmann/json.hpp>

#include <krmx/testing/simulator.hpp>

#include "claimable_counter/counter.hpp"

inline nlohmann::json counter_move(krmx::testing::Random& r, const Counter& c, std::string_view player) {
    switch (r.below(4)) {
        case 0:
            return c.claim ? counter::release() : counter::claim();
        case 1:
            return c.claim == player ? counter::release() : counter::claim();
        default:
            return counter::increment(static_cast<int>(r.between(-3, 3)));
    }
}

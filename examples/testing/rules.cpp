// Your game's rules, one expectation a line: given what happened, when a player does something, then the
// state is this, or it is refused with that reason. Any test framework runs these (a failed expectation
// throws krmx::testing::ExpectationFailed with the whole story); here a bare main does.

#include <cstdio>
#include <exception>

#include <krmx/testing/model_fixture.hpp>

#include "claimable_counter/counter.hpp"

using krmx::testing::by;
using krmx::testing::given;

void claimed_counters_belong_to_their_claimer() {
    given(counter::model(), {by("alice", counter::increment(3)), by("bob", counter::claim())})
        .when("alice", counter::increment(1))
        .then_refused("claimed by someone else")
        .when("bob", counter::increment(2))
        .then_state(Counter{5, "bob"})
        .then_emitted(counter::increment(2));
}

void nobody_overflows_the_counter() {
    given(counter::model(), {by("alice", counter::increment(2'147'483'000))})
        .when("bob", counter::increment(1'000))
        .then_refused("counter would overflow")
        .then_that("the counter is untouched", [](const Counter& c) { return c.counter == 2'147'483'000; });
}

int main() {
    int failed = 0;
    for (auto* test : {&claimed_counters_belong_to_their_claimer, &nobody_overflows_the_counter}) {
        try {
            test();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s\n", e.what());
            ++failed;
        }
    }
    std::printf("%d of 2 rule tests failed\n", failed);
    return failed == 0 ? 0 : 1;
}

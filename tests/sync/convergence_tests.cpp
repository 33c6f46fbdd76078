// Randomized multiplayer runs with fixed seeds: random latencies, events, unlinks and dropped connections.
// However the messages interleave, every client ends on the server's state and log.
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "sync_support.hpp"

namespace {

struct Run {
    unsigned seed;
    double optimistic_seconds;
    bool reads_appends_only;  // clients that link as the JavaScript ones do, without `features`
};

void run(const Run& r) {
    std::mt19937 rng{r.seed};
    auto chance = [&](double p) {
        return std::uniform_real_distribution<double>{0, 1}(rng) < p;
    };
    auto pick = [&](int lo, int hi) {
        return std::uniform_int_distribution<int>{lo, hi}(rng);
    };

    krmx::testing::HubOptions hub_options;
    if (r.reads_appends_only) hub_options.client.features.clear();
    Table t{{}, {.optimistic_seconds = r.optimistic_seconds}, hub_options};
    const std::vector<std::string> names{"ann", "ben", "cat", "dan", "eve"};
    for (const auto& name : names) {
        t.join(name, std::chrono::milliseconds{pick(0, 120)});
        t.hub.client(name).keep_received(false);
    }
    std::uint64_t local_refusals = 0;
    for (int action = 0; action < 400; ++action) {
        const auto& name = names[static_cast<std::size_t>(pick(0, static_cast<int>(names.size()) - 1))];
        auto& client = t[name];
        auto& connection = t.hub.client(name);
        const int what = pick(0, 99);
        if (what < 50) {
            const auto sent = client.dispatch(counter::increment(pick(1, 5)));
            local_refusals += !sent;
        } else if (what < 60) {
            local_refusals += !client.dispatch(counter::claim());
        } else if (what < 70) {
            local_refusals += !client.dispatch(counter::release());
        } else if (what < 73) {
            (void)t.server.dispatch(krmx::server_dispatcher, counter::release());
        } else if (what < 76) {
            connection.drop();  // in-flight messages are lost
            if (chance(0.7)) connection.link();
        } else if (what < 78) {
            connection.unlink();
        } else if (what < 80) {
            if (!connection.linked()) connection.link();
        } else if (what < 82) {
            connection.set_latency(std::chrono::milliseconds{pick(0, 200)});
        }
        t.hub.advance(std::chrono::milliseconds{pick(0, 40)});
    }
    // Everyone back online, then quiet: all answers arrive, all leftovers expire.
    for (const auto& name : names) {
        if (!t.hub.client(name).linked() && !t.hub.server().linked(name)) t.hub.client(name).link();
    }
    t.hub.run_until_idle();
    for (const auto& name : names) {
        if (!t[name].linked()) t.hub.client(name).link();  // an unlink that crossed a link request
    }
    t.hub.run_until_idle();
    t.hub.advance(std::chrono::seconds{30});

    INFO("seed " << r.seed);
    CHECK(t.server.size() > 20);
    CHECK(t.server.statistics().rejected > 0);  // contested claims happened
    for (const auto& name : names) {
        INFO("client " << name);
        const auto& c = t[name];
        REQUIRE(c.linked());
        CHECK(c.pending_count() == 0);
        CHECK(c.state() == t.server.state());
        CHECK(c.confirmed_state() == t.server.state());
        REQUIRE(c.confirmed_size() == t.server.size());
        const auto& log = c.stream().confirmed_log();
        for (std::size_t i = 0; i < t.server.size(); ++i) {
            CHECK(log[i].dispatcher() == t.server.stream().log()[i].dispatcher());
            CHECK(log[i].same_event(t.server.stream().log()[i]));
        }
        CHECK(c.statistics().divergent == 0);
        CHECK(c.statistics().out_of_order == 0);
    }
    (void)local_refusals;
}

}  // namespace

TEST_CASE("randomized multiplayer runs converge on the server's state") {
    for (const unsigned seed : {1u, 2u, 3u, 4u, 5u, 6u}) run({seed, 10.0, false});
}

TEST_CASE("randomized runs converge with histories as appends (clients that link as the JavaScript ones)") {
    for (const unsigned seed : {11u, 12u, 13u}) run({seed, 10.0, true});
}

TEST_CASE("randomized runs converge when pending events expire before their answers arrive") {
    for (const unsigned seed : {21u, 22u, 23u}) run({seed, 0.08, false});
}

// krmx::testing::Hub: time, order and session semantics.
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <krmx/testing/hub.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;
using krmx::testing::Hub;

namespace {
// Records what the server sees, as text: "link alice", "message alice hi", "unlink alice".
struct ServerLog {
    explicit ServerLog(Hub& hub) {
        subs.push_back(
            hub.server().on_link([this](std::string_view u) { seen.push_back("link " + std::string{u}); }));
        subs.push_back(hub.server().on_unlink(
            [this](std::string_view u) { seen.push_back("unlink " + std::string{u}); }));
        subs.push_back(hub.server().on_message([this](std::string_view u, std::string_view m) {
            seen.push_back("message " + std::string{u} + " " + std::string{m});
        }));
    }
    std::vector<std::string> seen;
    std::vector<krmx::Subscription> subs;
};
}  // namespace

TEST_CASE("nothing moves until the hub is stepped; step moves the clock to the next arrival") {
    Hub hub;
    ServerLog server{hub};
    auto& alice = hub.connect("alice", 30ms);
    alice.link();
    CHECK(server.seen.empty());
    CHECK(hub.next_arrival() == hub.now() + 30ms);
    const auto start = hub.now();
    CHECK(hub.step());
    CHECK(hub.now() - start == 30ms);
    CHECK(server.seen == std::vector<std::string>{"link alice"});
    CHECK(hub.server().linked("alice"));
    CHECK_FALSE(alice.linked());  // the acceptance is on its way back
    CHECK(hub.step());
    CHECK(alice.linked());
    CHECK(hub.elapsed() == 60ms);
    CHECK_FALSE(hub.step());
    CHECK(hub.idle());
}

TEST_CASE("what a link callback sends arrives after the acceptance") {
    Hub hub;
    auto sub = hub.server().on_link([&](std::string_view user) { hub.server().send(user, "history"); });
    auto& alice = hub.connect("alice", 5ms);
    std::vector<std::string> order;
    auto a = alice.on_link([&](std::string_view user) { order.push_back("linked as " + std::string{user}); });
    auto b = alice.on_message([&](std::string_view text) { order.push_back(std::string{text}); });
    alice.link();
    hub.run_until_idle();
    CHECK(order == std::vector<std::string>{"linked as alice", "history"});
}

TEST_CASE("each direction is first in, first out, even when the latency drops") {
    Hub hub;
    ServerLog server{hub};
    auto& alice = hub.connect("alice", 100ms);
    alice.link();
    hub.run_until_idle();
    alice.send("one");
    alice.set_latency(1ms);
    alice.send("two");
    hub.run_until_idle();
    CHECK(server.seen == std::vector<std::string>{"link alice", "message alice one", "message alice two"});
}

TEST_CASE("advance delivers what arrives in time, in arrival order across connections") {
    Hub hub;
    ServerLog server{hub};
    auto& slow = hub.connect("slow", 50ms);
    auto& fast = hub.connect("fast", 10ms);
    slow.link();
    fast.link();
    hub.advance(20ms);
    CHECK(server.seen == std::vector<std::string>{"link fast"});
    CHECK(hub.elapsed() == 20ms);
    hub.advance(100ms);
    CHECK(server.seen == std::vector<std::string>{"link fast", "link slow"});
    CHECK(hub.elapsed() == 120ms);
}

TEST_CASE("broadcast reaches linked users only; sends to others are counted as undeliverable") {
    Hub hub;
    auto& alice = hub.connect("alice");
    auto& bob = hub.connect("bob");
    alice.link();
    hub.run_until_idle();
    hub.server().broadcast("hello");
    hub.server().send("bob", "psst");
    bob.send("early");  // not linked yet
    hub.run_until_idle();
    CHECK(alice.received() == std::vector<std::string>{"hello"});
    CHECK(bob.received().empty());
    CHECK(hub.statistics().undeliverable == 2);
    CHECK(hub.server().linked_users() == std::vector<std::string>{"alice"});
}

TEST_CASE("unlink, leave and a link request while linked all unlink; leave also forgets the user") {
    Hub hub;
    ServerLog server{hub};
    auto& alice = hub.connect("alice");
    int unlinked = 0;
    auto sub = alice.on_unlink([&] { ++unlinked; });
    alice.link();
    hub.run_until_idle();
    alice.link();  // Krmx: a link request on a linked connection unlinks
    hub.run_until_idle();
    CHECK_FALSE(alice.linked());
    alice.link();
    hub.run_until_idle();
    alice.unlink();
    hub.run_until_idle();
    CHECK(hub.server().known_users() == std::vector<std::string>{"alice"});
    alice.link();
    hub.run_until_idle();
    alice.leave();
    hub.run_until_idle();
    CHECK(hub.server().known_users().empty());
    CHECK(unlinked == 3);
    CHECK(server.seen == std::vector<std::string>{"link alice", "unlink alice", "link alice", "unlink alice",
                                                  "link alice", "unlink alice"});
}

TEST_CASE("a dropped connection loses what is in flight and both sides learn at once") {
    Hub hub;
    ServerLog server{hub};
    auto& alice = hub.connect("alice", 10ms);
    alice.link();
    hub.run_until_idle();
    alice.send("lost");
    hub.server().send("alice", "lost too");
    alice.drop();
    CHECK_FALSE(alice.linked());
    CHECK_FALSE(hub.server().linked("alice"));
    CHECK(server.seen.back() == "unlink alice");
    CHECK(hub.statistics().lost == 2);
    CHECK(hub.idle());
    alice.link();  // reconnect
    hub.run_until_idle();
    CHECK(alice.linked());
}

TEST_CASE("clients tick when time moves, so they can expire what waits too long") {
    Hub hub;
    auto& alice = hub.connect("alice");
    int ticks = 0;
    auto sub = alice.on_tick([&] { ++ticks; });
    hub.advance(1s);
    hub.advance(0ms);  // no move, no tick
    CHECK(ticks == 1);
    CHECK(&alice.clock() == &hub.clock());
}

TEST_CASE("run_until_idle gives up on parties that answer each other forever") {
    Hub hub{{.latency = 1ms, .max_steps = 1000}};
    auto& ping = hub.connect("ping");
    auto a = hub.server().on_message(
        [&](std::string_view user, std::string_view) { hub.server().send(user, "pong"); });
    auto b = ping.on_message([&](std::string_view) { ping.send("ping"); });
    ping.link();
    hub.run_until_idle();
    ping.send("ping");
    CHECK_THROWS_AS(hub.run_until_idle(), std::runtime_error);
    CHECK_THROWS_AS(hub.connect("ping"), std::invalid_argument);
    CHECK_THROWS_AS(hub.client("nobody"), std::invalid_argument);
}

// krmx::testing::Hub: time, order and session semantics, on the production session (krmx::net::Session)
// and the production client session (krmx::net::ClientSession); posted and held work.
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <krmx/testing/hub.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;
using krmx::testing::Hub;

namespace {
// Records what the server sees, as text: "link alice", "message alice {...}", "unlink alice".
struct ServerLog {
    explicit ServerLog(Hub& hub) {
        subs.push_back(
            hub.server().on_link([this](std::string_view u) { seen.push_back("link " + std::string{u}); }));
        subs.push_back(hub.server().on_unlink(
            [this](std::string_view u) { seen.push_back("unlink " + std::string{u}); }));
        subs.push_back(hub.server().on_message([this](std::string_view u, const krmx::Message& m) {
            seen.push_back("message " + std::string{u} + " " + std::string{m.text()});
        }));
    }
    std::vector<std::string> seen;
    std::vector<krmx::Subscription> subs;
};

std::string chat(std::string_view text) {
    return R"({"type":"chat","payload":")" + std::string{text} + R"("})";
}
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
    hub.run_until_idle();  // the session's frames that follow the acceptance (joined, linked)
    CHECK(hub.elapsed() == 60ms);
    CHECK(alice.session().session_frames().size() == 3);
    CHECK(alice.session().users().size() == 1);
    CHECK_FALSE(hub.step());
    CHECK(hub.idle());
}

TEST_CASE("the hub's server is the production session: every link check applies") {
    Hub hub;
    auto& bad = hub.connect("-bad-");
    std::vector<std::string> rejections;
    auto sub = bad.session().on_rejected([&](std::string_view reason) { rejections.emplace_back(reason); });
    bad.link();
    hub.run_until_idle();
    CHECK_FALSE(bad.linked());
    CHECK(rejections == std::vector<std::string>{"invalid username"});
    CHECK(hub.server().statistics().rejected_username == 1);
    auto& alice = hub.connect("alice");
    alice.link();
    hub.run_until_idle();
    CHECK(hub.server().has_feature("alice", "stream/history"));  // the client says it reads pages
    CHECK(hub.server().users().size() == 1);
}

TEST_CASE("what a link callback sends arrives after the acceptance") {
    Hub hub;
    auto sub = hub.server().on_link([&](std::string_view user) { hub.server().send(user, chat("history")); });
    auto& alice = hub.connect("alice", 5ms);
    std::vector<std::string> order;
    auto a = alice.on_link([&](std::string_view user) { order.push_back("linked as " + std::string{user}); });
    auto b = alice.on_message([&](std::string_view text) { order.push_back(std::string{text}); });
    alice.link();
    hub.run_until_idle();
    CHECK(order == std::vector<std::string>{"linked as alice", chat("history")});
}

TEST_CASE("each direction is first in, first out, even when the latency drops") {
    Hub hub;
    ServerLog server{hub};
    auto& alice = hub.connect("alice", 100ms);
    alice.link();
    hub.run_until_idle();
    alice.send(chat("one"));
    alice.set_latency(1ms);
    alice.send(chat("two"));
    hub.run_until_idle();
    CHECK(server.seen ==
          std::vector<std::string>{"link alice", "message alice " + chat("one"), "message alice " + chat("two")});
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

TEST_CASE("timers fire when the clock passes them, in time order among the arrivals") {
    Hub hub;
    ServerLog server{hub};
    std::vector<std::string> fired;
    const auto start = hub.now();
    hub.after(50ms, [&] { fired.push_back("50 at " + std::to_string((hub.now() - start) / 1ms)); });
    hub.after(10ms, [&] { fired.push_back("10 at " + std::to_string((hub.now() - start) / 1ms)); });
    hub.after(10ms, [&] { fired.push_back("10b at " + std::to_string((hub.now() - start) / 1ms)); });
    // run_until_idle lets no time pass: nothing is in flight, so nothing fires.
    hub.run_until_idle();
    CHECK(fired.empty());
    CHECK(hub.idle());
    // A delivery that moves the clock past a timer fires the timer first, at its own time.
    auto& alice = hub.connect("alice", 20ms);
    alice.link();
    hub.run_until_idle();
    CHECK(fired == std::vector<std::string>{"10 at 10", "10b at 10"});
    CHECK(server.seen == std::vector<std::string>{"link alice"});
    CHECK(hub.elapsed() == 40ms);  // the link's acceptance came back
    hub.advance(15ms);             // to 55
    CHECK(fired.size() == 3);
    CHECK(fired.back() == "50 at 50");
    hub.after(1ms, [&] {
        fired.push_back("nested at " + std::to_string((hub.now() - start) / 1ms));
        hub.after(2ms, [&] { fired.push_back("inner at " + std::to_string((hub.now() - start) / 1ms)); });
    });
    hub.advance(10ms);  // a timer that a timer sets fires too, when due in time
    CHECK(fired == std::vector<std::string>{"10 at 10", "10b at 10", "50 at 50", "nested at 56", "inner at 58"});
    CHECK(hub.elapsed() == 65ms);
    CHECK(hub.statistics().timers == 5);
}

TEST_CASE("broadcast reaches linked users only; sends to others are counted as undeliverable") {
    Hub hub;
    auto& alice = hub.connect("alice");
    auto& bob = hub.connect("bob");
    alice.link();
    hub.run_until_idle();
    hub.server().broadcast(chat("hello"));
    hub.server().send("bob", chat("psst"));  // not linked: the session counts it
    bob.send(chat("early"));                  // not linked yet: the client drops it
    hub.run_until_idle();
    CHECK(alice.received() == std::vector<std::string>{chat("hello")});
    CHECK(bob.received().empty());
    CHECK(hub.statistics().undeliverable == 1);
    CHECK(hub.server().statistics().undeliverable == 1);
    CHECK(hub.server().linked("alice"));
    CHECK_FALSE(hub.server().known("bob"));
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
    CHECK(hub.server().known("alice"));
    alice.link();
    hub.run_until_idle();
    alice.leave();
    hub.run_until_idle();
    CHECK_FALSE(hub.server().known("alice"));
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
    alice.send(chat("lost"));
    hub.server().send("alice", chat("lost too"));
    alice.drop();
    CHECK_FALSE(alice.linked());
    CHECK_FALSE(hub.server().linked("alice"));
    CHECK(server.seen.back() == "unlink alice");
    CHECK(hub.statistics().lost == 2);
    CHECK(hub.idle());
    alice.link();  // reconnect: a new connection at the server
    hub.run_until_idle();
    CHECK(alice.linked());
    CHECK(hub.server().statistics().connections_opened == 2);
}

TEST_CASE("the session's deadlines run on the hub's clock: an unlinked connection is closed in time") {
    Hub hub{{.session = {.link_deadline = 5s}}};
    auto& alice = hub.connect("alice", 10ms);
    alice.link();
    hub.run_until_idle();
    alice.unlink();
    hub.run_until_idle();
    std::vector<krmx::testing::Delivery::Kind> kinds;
    auto watch = hub.on_delivery([&](const krmx::testing::Delivery& d) { kinds.push_back(d.kind); });
    hub.advance(6s);
    CHECK(hub.server().statistics().link_deadline_closes == 1);
    CHECK(kinds.empty());  // the close travels to the client like any frame
    hub.advance(10ms);
    CHECK(kinds == std::vector<krmx::testing::Delivery::Kind>{krmx::testing::Delivery::Kind::closed});
    alice.link();  // a new connection
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

TEST_CASE("posted functions run in the next step; held work keeps run_until_idle waiting for its post") {
    Hub hub;
    std::vector<std::string> ran;
    hub.post([&] { ran.emplace_back("first"); });
    CHECK_FALSE(hub.idle());
    CHECK(hub.step());
    CHECK(ran == std::vector<std::string>{"first"});
    CHECK(hub.idle());

    auto token = hub.hold();
    CHECK_FALSE(hub.idle());
    std::thread worker{[&hub, token = std::move(token)]() mutable {
        std::this_thread::sleep_for(20ms);
        hub.post([token = std::move(token)] {});  // the token goes with the posted function
    }};
    token.reset();
    hub.post([&] { ran.emplace_back("second"); });
    hub.run_until_idle();  // waits for the worker's post, runs it, and only then is idle
    worker.join();
    CHECK(ran == std::vector<std::string>{"first", "second"});
    CHECK(hub.idle());
    CHECK(hub.statistics().posted == 3);
}

TEST_CASE("run_until_idle gives up on parties that answer each other forever, and on work that never posts") {
    Hub hub{{.latency = 1ms, .max_steps = 1000, .work_timeout = std::chrono::milliseconds{50}}};
    auto& ping = hub.connect("ping");
    auto a = hub.server().on_message(
        [&](std::string_view user, const krmx::Message&) { hub.server().send(user, chat("pong")); });
    auto b = ping.on_message([&](std::string_view) { ping.send(chat("ping")); });
    ping.link();
    hub.run_until_idle();
    ping.send(chat("ping"));
    CHECK_THROWS_AS(hub.run_until_idle(), std::runtime_error);
    CHECK_THROWS_AS(hub.connect("ping"), std::invalid_argument);
    CHECK_THROWS_AS(hub.client("nobody"), std::invalid_argument);

    Hub stuck{{.work_timeout = std::chrono::milliseconds{50}}};
    const auto forever = stuck.hold();
    CHECK_THROWS_AS(stuck.run_until_idle(), std::runtime_error);
}

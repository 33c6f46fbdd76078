// The stream protocol end to end, through the hub: history, confirmations, invalidations, sessions.
#include <stdexcept>
#include <string>

#include "catch.hpp"
#include "pipeline_support.hpp"
#include "sync_support.hpp"

using nlohmann::json;

TEST_CASE("a linking client receives the history and rebuilds the state from it") {
    Table t;
    (void)t.server.dispatch("alice", counter::increment(3));
    (void)t.server.dispatch("bob", counter::claim());
    auto& carol = t.join("carol");
    CHECK_FALSE(carol.linked());
    t.hub.run_until_idle();
    CHECK(carol.synced());
    CHECK(carol.state() == Counter{3, "bob"});
    CHECK(carol.confirmed_size() == 2);
    const auto messages = parsed(t.hub.client("carol"));
    REQUIRE(messages.size() == 1);
    CHECK(messages[0]["type"] == "stream/history");
    CHECK(messages[0]["payload"]["position"] == 0);
    CHECK(messages[0]["payload"]["events"][1] ==
          json::parse(R"({"dispatcher":"bob","event":{"type":"claim"}})"));
}

TEST_CASE("an empty stream still sends an empty history, so a client knows it is in sync") {
    Table t;
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    CHECK(alice.synced());
    CHECK(t.hub.client("alice").received().front() ==
          R"({"type":"stream/history","payload":{"domain":"counter","position":0,"events":[]}})");
}

TEST_CASE("a client that does not say it reads history pages gets one stream/append per event") {
    // The JavaScript Krmx clients link without `features`: they read appends, and need no server flag.
    Table t{{}, {}, {.client = {.features = {}}}};
    (void)t.server.dispatch("alice", counter::increment(3));
    (void)t.server.dispatch("alice", counter::increment(4));
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    const auto& received = t.hub.client("bob").received();
    REQUIRE(received.size() == 2);
    CHECK(received[0] == R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice",)"
                         R"("event":{"type":"increment","payload":3},"position":0}})");
    CHECK(bob.state().counter == 7);
}

TEST_CASE("an accepted event reaches every linked client with its position and the sender's id") {
    Table t;
    auto& alice = t.join("alice", 10ms);
    auto& bob = t.join("bob", 50ms);
    t.hub.run_until_idle();
    t.hub.client("alice").clear_received();
    t.hub.client("bob").clear_received();

    const auto sent = alice.dispatch(counter::increment(2));
    REQUIRE(sent);
    CHECK(alice.state().counter == 2);  // at once
    CHECK(alice.confirmed_state().counter == 0);
    CHECK(alice.pending_count() == 1);
    t.hub.advance(20ms);  // one round trip for alice; bob's copy is still on its way
    CHECK(alice.pending_count() == 0);
    CHECK(alice.confirmed_state().counter == 2);
    CHECK(bob.state().counter == 0);
    t.hub.run_until_idle();
    CHECK(bob.state().counter == 2);

    const auto expected = R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice",)"
                          R"("event":{"type":"increment","payload":2},"position":0,"id":)" +
                          std::to_string(*sent.id) + "}}";
    CHECK(t.hub.client("alice").received() == std::vector<std::string>{expected});
    CHECK(t.hub.client("bob").received() == std::vector<std::string>{expected});
    CHECK(t.server.statistics().accepted == 1);
    CHECK(t.converged());
}

TEST_CASE("a refused event is invalidated at the sender only, with the reason") {
    Table t;
    auto& alice = t.join("alice", 10ms);
    auto& bob = t.join("bob", 50ms);
    t.hub.run_until_idle();
    t.hub.client("alice").clear_received();
    t.hub.client("bob").clear_received();

    REQUIRE(alice.dispatch(counter::claim()));
    const auto sent = bob.dispatch(counter::increment(1));  // bob does not know of alice's claim yet
    REQUIRE(sent);
    t.hub.run_until_idle();

    const auto to_bob = parsed(t.hub.client("bob"));
    REQUIRE(to_bob.size() == 2);
    CHECK(to_bob[0]["type"] == "stream/append");
    CHECK(to_bob[1] ==
          json::parse(R"({"type":"stream/invalidate","payload":{"domain":"counter","id":)" +
                      std::to_string(*sent.id) +
                      R"(,"event":{"type":"increment","payload":1},"reason":"claimed by someone else"}})"));
    for (const auto& m : parsed(t.hub.client("alice"))) CHECK(m["type"] != "stream/invalidate");
    CHECK(t.server.statistics().rejected == 1);
    CHECK(t.server.statistics().invalidates_sent == 1);
    CHECK(bob.statistics().invalidated == 1);

    // Once bob knows, his model refuses locally and nothing is sent.
    const auto local = bob.dispatch(counter::increment(1));
    CHECK_FALSE(local);
    CHECK(local.result.reason() == "claimed by someone else");
    CHECK(bob.statistics().sent == 1);
    CHECK(t.converged());
}

TEST_CASE("a contested claim: the later one is invalidated and leaves the optimistic state") {
    Table t;
    auto& bob = t.join("bob", 10ms);
    auto& carol = t.join("carol", 40ms);
    t.hub.run_until_idle();
    std::vector<std::string> reasons;
    auto sub = carol.on_invalidated(
        [&](std::uint64_t, const json&, std::string_view reason) { reasons.emplace_back(reason); });
    REQUIRE(bob.dispatch(counter::claim()));
    REQUIRE(carol.dispatch(counter::claim()));
    REQUIRE(carol.dispatch(counter::increment(5)));
    CHECK(carol.state() == Counter{5, "carol"});
    t.hub.run_until_idle();
    CHECK(reasons == std::vector<std::string>{"already claimed", "claimed by someone else"});
    CHECK(carol.state() == Counter{0, "bob"});
    CHECK(carol.statistics().invalidated == 2);
    CHECK(t.converged());
}

TEST_CASE("the dispatcher cannot be spoofed: the sender is the dispatcher") {
    Table t;
    auto& alice = t.join("alice");
    auto& mallory = t.raw("mallory");
    t.hub.run_until_idle();
    mallory.send(
        R"({"type":"stream/append","payload":{"domain":"counter","dispatcher":"alice","event":{"type":"claim"},"id":1}})");
    t.hub.run_until_idle();
    CHECK(t.server.state().claim == "mallory");
    CHECK(t.server.stream().log()[0].dispatcher() == "mallory");
    CHECK(alice.state().claim == "mallory");
    CHECK(parsed(mallory).back()["payload"]["dispatcher"] == "mallory");
    // alice's own pending events cannot be confirmed by mallory's echo of the same id either.
    CHECK_FALSE(alice.dispatch(counter::increment(1)));  // claimed by mallory: refused locally
}

TEST_CASE("the event is re-sent exactly as received, in the broadcast and in later histories") {
    Table t;
    auto& mallory = t.raw("mallory");
    const std::string event = R"({"payload":1.0e0,"type":"increment"})";
    mallory.send(R"({"type":"stream/append","payload":{"domain":"counter","event":)" + event + "}}");
    t.hub.run_until_idle();
    REQUIRE(t.server.size() == 1);
    CHECK(t.server.event_text(0) == event);
    CHECK(mallory.received().back().find(R"("event":)" + event + ",") != std::string::npos);
    t.join("zoe");
    t.hub.run_until_idle();
    CHECK(t.hub.client("zoe").received().front().find(event) != std::string::npos);
    CHECK(t["zoe"].state().counter == 1);
}

TEST_CASE("domains on one host do not see each other's events") {
    krmx::testing::Hub hub;
    auto& host = hub.host();
    krmx::StreamDomain red{host, "red", counter::model()};
    krmx::StreamDomain blue{hub, "blue", counter::model()};
    CHECK_THROWS_AS(krmx::StreamDomain(host, "red", counter::model()), std::invalid_argument);
    auto& alice = hub.connect("alice", 5ms);
    krmx::StreamClient alice_red{alice, "red", counter::model()};
    krmx::StreamClient alice_blue{alice, "blue", counter::model()};
    alice.link();
    hub.run_until_idle();
    CHECK(alice_red.synced());
    CHECK(alice_blue.synced());
    REQUIRE(alice_red.dispatch(counter::increment(3)));
    REQUIRE(alice_blue.dispatch(counter::claim()));
    hub.run_until_idle();
    CHECK(red.state() == Counter{3, std::nullopt});
    CHECK(blue.state() == Counter{0, "alice"});
    CHECK(alice_red.state() == red.state());
    CHECK(alice_blue.state() == blue.state());
    CHECK(alice_red.confirmed_size() == 1);
    CHECK(alice_blue.confirmed_size() == 1);
    CHECK(host.domains() == std::vector<std::string>{"blue", "red"});
}

TEST_CASE("a relinking client rebuilds from the history and converges") {
    Table t;
    auto& alice = t.join("alice", 10ms);
    auto& bob = t.join("bob", 30ms);
    t.hub.run_until_idle();
    REQUIRE(bob.dispatch(counter::increment(1)));
    t.hub.run_until_idle();

    t.hub.client("bob").unlink();
    t.hub.run_until_idle();
    CHECK_FALSE(bob.linked());
    CHECK(bob.state() == Counter{});  // reset on its own unlink
    REQUIRE(alice.dispatch(counter::increment(5)));
    REQUIRE(alice.dispatch(counter::claim()));
    t.hub.run_until_idle();
    CHECK_FALSE(bob.dispatch(counter::increment(1)));  // not linked: refused, not sent

    t.hub.client("bob").link();
    t.hub.run_until_idle();
    CHECK(bob.synced());
    CHECK(bob.state() == Counter{6, "alice"});
    CHECK(bob.statistics().histories == 2);
    CHECK(t.converged());
}

TEST_CASE("a dropped connection loses what was in flight; after relinking the client converges") {
    Table t;
    auto& alice = t.join("alice", 10ms);
    auto& bob = t.join("bob", 100ms);
    t.hub.run_until_idle();
    REQUIRE(bob.dispatch(counter::increment(7)));  // lost with the connection
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.advance(50ms);
    std::vector<std::string> reasons;
    auto sub =
        bob.on_invalidated([&](std::uint64_t, const json&, std::string_view r) { reasons.emplace_back(r); });
    t.hub.client("bob").drop();
    CHECK(reasons == std::vector<std::string>{"reset"});
    CHECK_FALSE(t.hub.server().linked("bob"));
    CHECK(t.hub.statistics().lost >= 1);
    t.hub.client("bob").link();
    t.hub.run_until_idle();
    CHECK(t.server.state().counter == 1);
    CHECK(t.converged());
}

TEST_CASE("leave forgets the user; linking again is a new join that gets the history") {
    Table t;
    t.join("alice");
    t.hub.run_until_idle();
    (void)t["alice"].dispatch(counter::increment(2));
    t.hub.run_until_idle();
    CHECK(t.hub.server().known("alice"));
    t.hub.client("alice").leave();
    t.hub.run_until_idle();
    CHECK_FALSE(t.hub.server().known("alice"));
    CHECK_FALSE(t["alice"].linked());
    t.hub.client("alice").link();
    t.hub.run_until_idle();
    CHECK(t["alice"].state().counter == 2);
    CHECK(t.converged());
}

TEST_CASE("server code dispatches its own events under a dispatcher name of its choice") {
    Table t;
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    CHECK(t.server.dispatch(krmx::server_dispatcher, counter::claim()).accepted());
    CHECK(t.server.dispatch_text("referee", R"({"type":"increment","payload":4})").outcome() ==
          krmx::Outcome::rejected);
    CHECK(t.server.dispatch(krmx::server_dispatcher, json{{"type", "increment"}, {"payload", 4}}).accepted());
    t.hub.run_until_idle();
    CHECK(alice.state() == Counter{4, "<server>"});
    CHECK(t.server.statistics().accepted == 2);
    CHECK(t.server.statistics().rejected == 1);
    CHECK(t.server.statistics().invalidates_sent == 0);  // nobody to tell
}

TEST_CASE("a pending event expires after optimistic_seconds when no answer comes") {
    Table t{{}, {.optimistic_seconds = 1}};
    auto& alice = t.join("alice", 2s);  // slower than the window
    t.hub.run_until_idle();
    std::vector<std::string> reasons;
    auto sub = alice.on_invalidated(
        [&](std::uint64_t, const json&, std::string_view r) { reasons.emplace_back(r); });
    REQUIRE(alice.dispatch(counter::increment(3)));
    t.hub.advance(1500ms);  // a tick past the deadline, the answer still on its way
    CHECK(reasons == std::vector<std::string>{"expired after 1 s"});
    CHECK(alice.state().counter == 0);
    t.hub.run_until_idle();  // the server accepted it after all: it arrives as a confirmed event
    CHECK(alice.state().counter == 3);
    CHECK(t.converged());
}

TEST_CASE("a journal of one's own stores each event before anyone sees it; when it fails the event is refused") {
    std::vector<std::string> stored;
    bool disk_full = false;
    krmx::testing::CallbackJournal journal{[&](std::span<const krmx::CommitEvent> batch, krmx::CommitDone done) {
        if (disk_full) throw std::runtime_error("disk full");
        for (const auto& event : batch) {
            CHECK(event.position == stored.size());
            stored.push_back(std::string{event.dispatcher} + " " + std::string{event.text});
        }
        done(std::nullopt);
    }};
    Table t{{.durability = journal.durability()}};
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    REQUIRE(alice.dispatch(counter::increment(2)));
    REQUIRE(alice.dispatch(counter::claim()));
    t.hub.run_until_idle();
    CHECK(stored ==
          std::vector<std::string>{R"(alice {"type":"increment","payload":2})", R"(alice {"type":"claim"})"});

    disk_full = true;
    REQUIRE(alice.dispatch(counter::increment(5)));
    REQUIRE(alice.dispatch(counter::release()));
    t.hub.run_until_idle();
    CHECK(t.server.state() == Counter{2, "alice"});  // taken back out
    CHECK(t.server.size() == 2);
    CHECK(t.server.statistics().not_stored == 2);
    CHECK(alice.state() == Counter{2, "alice"});
    CHECK(parsed(t.hub.client("alice")).back()["payload"]["reason"] == "event not stored: disk full");

    disk_full = false;
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(t.server.state() == Counter{3, "alice"});
    CHECK(stored.size() == 3);
    CHECK(t.converged());
}

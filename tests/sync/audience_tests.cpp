// Audiences (StreamDomainOptions::audience = members): only admitted users hear a domain and may append;
// admission sends the history at once, dismissal says so; membership derived from the domain's own events
// survives a restart of a durable domain.
#include <string>

#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>

#include "catch.hpp"
#include "sync_support.hpp"

using nlohmann::json;

namespace {

const krmx::StreamDomainOptions members_only{.audience = krmx::Audience::members};

// The domain's messages a connection received (session frames are not in received()).
std::size_t messages_of(const krmx::testing::ClientEndpoint& connection, std::string_view type) {
    std::size_t n = 0;
    for (const auto& m : parsed(connection)) n += m["type"] == type ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE("audience: only members hear the domain, and a non-member's append is refused with a reason",
          "[sync][audience]") {
    Table t{members_only};
    CHECK(t.server.admit("alice"));
    CHECK_FALSE(t.server.admit("alice"));
    auto& alice = t.join("alice");
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    CHECK(alice.synced());
    CHECK(bob.sync_status() == krmx::SyncStatus::syncing);  // no history: bob is no member
    CHECK(t.hub.client("bob").received().empty());

    (void)alice.dispatch(counter::increment(2));
    (void)bob.dispatch(counter::increment(100));
    t.hub.run_until_idle();
    CHECK(t.server.state().counter == 2);
    CHECK(alice.state().counter == 2);
    CHECK(bob.state().counter == 0);  // its optimistic event was dropped
    CHECK(bob.statistics().invalidated == 1);
    const auto bobs = parsed(t.hub.client("bob"));
    REQUIRE(bobs.size() == 1);  // its invalidate, and nothing of alice's
    CHECK(bobs[0]["type"] == "stream/invalidate");
    CHECK(bobs[0]["payload"]["reason"] == R"(not a member of domain "counter")");
    CHECK(t.server.statistics().not_member == 1);
    CHECK(t.server.statistics().refused() == 1);

    // a resync from a non-member gets nothing, and is counted
    t.hub.client("bob").clear_received();
    t.hub.client("bob").send(R"({"type":"stream/resync","payload":{"domain":"counter","position":0}})");
    t.hub.run_until_idle();
    CHECK(t.hub.client("bob").received().empty());
    CHECK(t.server.statistics().not_member_resyncs == 1);
    CHECK(t.server.statistics().resyncs == 0);
}

TEST_CASE("audience: a user admitted mid-game catches up at once; a dismissed one is told and hears no more",
          "[sync][audience]") {
    Table t{members_only};
    (void)t.server.admit("alice");
    auto& alice = t.join("alice");
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    for (int i = 0; i < 5; ++i) (void)alice.dispatch(counter::increment(1));
    t.hub.run_until_idle();
    CHECK(bob.confirmed_size() == 0);

    CHECK(t.server.admit("bob"));  // bob is linked: the history goes now
    t.hub.run_until_idle();
    CHECK(bob.synced());
    CHECK(bob.state() == t.server.state());
    (void)bob.dispatch(counter::increment(10));  // a member now: accepted
    t.hub.run_until_idle();
    CHECK(t.server.state().counter == 15);
    CHECK(alice.state() == t.server.state());
    CHECK(bob.state() == t.server.state());

    t.hub.client("bob").clear_received();
    std::string why;
    const auto sub = bob.on_sync([&](krmx::SyncStatus, std::string_view reason) { why = reason; });
    CHECK(t.server.dismiss("bob"));
    CHECK_FALSE(t.server.dismiss("bob"));
    t.hub.run_until_idle();
    CHECK(t.hub.client("bob").received() ==
          std::vector<std::string>{R"({"type":"stream/dismissed","payload":{"domain":"counter"}})"});
    CHECK(bob.statistics().dismissed == 1);
    CHECK(bob.confirmed_size() == 0);  // what it knew of the room is gone
    CHECK(bob.sync_status() == krmx::SyncStatus::syncing);
    CHECK(why == "dismissed");

    (void)alice.dispatch(counter::increment(1));
    t.hub.run_until_idle();
    CHECK(messages_of(t.hub.client("bob"), "stream/append") == 0);
    CHECK(t.server.members() == std::set<std::string, std::less<>>{"alice"});
}

TEST_CASE("audience: a client that reads appends (the JavaScript clients) catches up with appends on admission",
          "[sync][audience]") {
    Table t{members_only, {}, {.client = {.features = {}}}};
    (void)t.server.dispatch(krmx::server_dispatcher, counter::increment(3));
    (void)t.server.dispatch(krmx::server_dispatcher, counter::increment(4));
    auto& carol = t.join("carol");
    t.hub.run_until_idle();
    CHECK(t.hub.client("carol").received().empty());
    (void)t.server.admit("carol");
    t.hub.run_until_idle();
    CHECK(messages_of(t.hub.client("carol"), "stream/append") == 2);
    CHECK(carol.state().counter == 7);
}

TEST_CASE("audience: admitted before linking, a member gets the history when it links; everyone-domains ignore "
          "membership",
          "[sync][audience]") {
    Table t{members_only};
    (void)t.server.admit("dave");
    (void)t.server.dispatch(krmx::server_dispatcher, counter::increment(1));
    auto& dave = t.join("dave");
    t.hub.run_until_idle();
    CHECK(dave.synced());
    CHECK(dave.state().counter == 1);

    Table open;  // Audience::everyone, the default
    CHECK(open.server.hears("anyone"));
    auto& erin = open.join("erin");
    open.hub.run_until_idle();
    CHECK(erin.synced());
    open.hub.client("erin").clear_received();
    (void)open.server.admit("erin");  // no effect on who hears: erin has the history, and gets it not twice
    (void)open.server.dismiss("erin");  // nor is anybody told anything
    open.hub.run_until_idle();
    CHECK(open.hub.client("erin").received().empty());
    CHECK(erin.synced());
}

namespace {

// A room whose players join by an event: membership is part of the stream, so it comes back with it.
struct Room {
    std::set<std::string> players;
    int pot = 0;
    friend bool operator==(const Room&, const Room&) = default;
};
inline constexpr krmx::EventType<std::string> joined{"joined"};
inline constexpr krmx::EventType<int> bet{"bet"};

const krmx::StreamModel<Room>& room_model() {
    static const auto m =
        krmx::StreamModel<Room>{}
            .when(joined, [](Room& r, std::string_view, const std::string& who) { r.players.insert(who); })
            .when(
                bet,
                [](const Room& r, std::string_view by, int n) {
                    return r.players.count(std::string{by}) == 0 ? krmx::refuse("not seated")
                           : n <= 0                               ? krmx::refuse("bets are positive")
                                                                  : krmx::allow();
                },
                [](Room& r, std::string_view, int n) { r.pot += n; });
    return m;
}

}  // namespace

TEST_CASE("audience: membership derived from the domain's events survives a restart of a durable domain",
          "[sync][audience]") {
    krmx::MemoryEventStore store;
    const krmx::StreamDomainOptions durable_room{.durability = krmx::durable(store),
                                                 .audience = krmx::Audience::members};
    {
        krmx::testing::Hub hub;
        krmx::StreamDomain room{hub, "room", room_model(), durable_room};
        for (const char* who : {"alice", "bob"}) {
            (void)room.dispatch(krmx::server_dispatcher, joined(who));  // server code seats them...
            (void)room.admit(who);                                     // ...and lets them hear the room
        }
        auto& alice_connection = hub.connect("alice", 5ms);
        krmx::StreamClient<Room> alice{alice_connection, "room", room_model()};
        alice_connection.link();
        hub.run_until_idle();
        (void)alice.dispatch(bet(5));
        hub.run_until_idle();
        CHECK(room.state().pot == 5);
    }
    // A restart: the stream comes back from the store, and with it who sits in the room.
    krmx::testing::Hub hub;
    krmx::StreamDomain room{hub, "room", room_model(), durable_room};
    CHECK(room.members().empty());
    for (const auto& player : room.state().players) (void)room.admit(player);
    CHECK(room.members() == std::set<std::string, std::less<>>{"alice", "bob"});
    auto& bob_connection = hub.connect("bob", 5ms);
    auto& mallory_connection = hub.connect("mallory", 5ms);
    krmx::StreamClient<Room> bob{bob_connection, "room", room_model()};
    krmx::StreamClient<Room> mallory{mallory_connection, "room", room_model()};
    bob_connection.link();
    mallory_connection.link();
    hub.run_until_idle();
    CHECK(bob.state() == room.state());
    CHECK(bob.state().pot == 5);
    CHECK(mallory.confirmed_size() == 0);
    CHECK_FALSE(mallory.dispatch(bet(1000)));  // its own model refuses (it sees no seat), so nothing is sent
    mallory_connection.send(R"({"type":"stream/append","payload":{"domain":"room","event":{"type":"bet","payload":1000},"id":1}})");
    hub.run_until_idle();
    CHECK(room.state().pot == 5);
    CHECK(room.statistics().not_member == 1);
}

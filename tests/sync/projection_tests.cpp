// Projection domains: a private, event-sourced state; each user receives only its own view, as a
// `projection/set` and then jsondiffpatch deltas; optimistic actions on the client; refusals, audiences,
// durability, views that throw or do not fit.
#include <algorithm>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <krmx/core/json_delta.hpp>
#include <krmx/net/session.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/projection_client.hpp>
#include <krmx/sync/projection_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "cards/cards.hpp"
#include "catch.hpp"

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::vector<int> ordered_deck() {
    std::vector<int> deck(52);
    std::iota(deck.begin(), deck.end(), 0);
    return deck;
}

// A game of cards on a hub: players with projection clients, and raw connections that only record.
struct CardTable {
    explicit CardTable(krmx::ProjectionDomainOptions options = {}, krmx::testing::HubOptions hub_options = {})
        : hub(std::move(hub_options)), server(hub, "cards", cards::model(), std::move(options)) {}

    krmx::ProjectionClient<cards::Table, cards::Seat>& join(const std::string& name, krmx::Duration latency = 10ms) {
        auto& connection = hub.connect(name, latency);
        auto& client = *clients
                            .emplace(name, std::make_unique<krmx::ProjectionClient<cards::Table, cards::Seat>>(
                                               connection, "cards", cards::model()))
                            .first->second;
        connection.link();
        return client;
    }
    krmx::ProjectionClient<cards::Table, cards::Seat>& operator[](const std::string& name) { return *clients.at(name); }

    // Every client holds exactly its own view of what the server confirmed, and nothing pending.
    [[nodiscard]] bool converged() const {
        for (const auto& [name, client] : clients) {
            const auto expected = cards::view(server.shown_state(), name);
            if (!(client->view() == expected && client->confirmed_view() == expected && client->pending_count() == 0)) {
                return false;
            }
        }
        return true;
    }

    krmx::testing::Hub hub;
    krmx::ProjectionDomain<cards::Table, cards::Seat> server;
    std::map<std::string, std::unique_ptr<krmx::ProjectionClient<cards::Table, cards::Seat>>> clients;
};

// The projection messages a connection received, parsed.
std::vector<json> projection_messages(const krmx::testing::ClientEndpoint& connection) {
    std::vector<json> out;
    for (const auto& text : connection.received()) {
        auto message = json::parse(text);
        if (message["type"].get<std::string>().starts_with("projection/")) out.push_back(std::move(message));
    }
    return out;
}

// The view a connection's frames add up to: its set, then every delta applied with json_patch.
json replay_frames(const krmx::testing::ClientEndpoint& connection) {
    json view;
    for (const auto& message : projection_messages(connection)) {
        if (message["type"] == "projection/set") view = message["payload"]["projection"];
        if (message["type"] == "projection/delta") krmx::json_patch(view, message["payload"]["delta"]);
    }
    return view;
}

// Everything a connection's frames ever showed of hands: each set's and each patched view's `hand`, and
// every value a delta carries under `hand` (old and new).
std::set<int> cards_seen_in_hands(const krmx::testing::ClientEndpoint& connection) {
    std::set<int> seen;
    json view;
    const auto collect = [&](const json& value) {
        if (value.is_number_integer()) seen.insert(value.get<int>());
        if (value.is_array()) {
            for (const auto& card : value) {
                if (card.is_number_integer()) seen.insert(card.get<int>());
            }
        }
    };
    // An array delta's added, replaced and deleted elements (not the 0s that mark a deletion or a move), or
    // a whole hand replaced.
    const auto collect_delta = [&](const json& delta) {
        if (delta.is_array()) {
            for (std::size_t i = 0; i < std::min<std::size_t>(delta.size(), 2); ++i) collect(delta[i]);
            return;
        }
        for (const auto& [key, change] : delta.items()) {
            if (key == "_t" || !change.is_array()) continue;
            if (change.size() == 3) {
                if (change[2] == 0) collect(change[0]);
            } else {
                for (const auto& value : change) collect(value);
            }
        }
    };
    for (const auto& message : projection_messages(connection)) {
        if (message["type"] == "projection/set") view = message["payload"]["projection"];
        if (message["type"] == "projection/delta") {
            const auto& delta = message["payload"]["delta"];
            if (delta.is_object() && delta.contains("hand")) collect_delta(delta["hand"]);
            krmx::json_patch(view, delta);
        }
        if (view.is_object() && view.contains("hand")) collect(view["hand"]);
    }
    return seen;
}

// A parity game: the state is a number, each user sees only whether it is even. Adding 2 changes no view.
struct Number {
    int value = 0;
};
inline constexpr krmx::EventType<int> add{"add"};
const krmx::ProjectionModel<Number, json>& parity_model() {
    static const auto m = krmx::ProjectionModel<Number, json>{Number{}, [](const Number& n, std::string_view user) {
                                                                  if (user == "broken" && n.value == 3)
                                                                      throw std::runtime_error("no view for you");
                                                                  // "big" sees a long string when the number is 5
                                                                  if (user == "big" && n.value == 5)
                                                                      return json{{"even", false}, {"blob", std::string(8000, 'x')}};
                                                                  return json{{"even", n.value % 2 == 0}};
                                                              }}
                              .when(add, [](Number& n, std::string_view, int k) { n.value += k; });
    return m;
}

}  // namespace

TEST_CASE("projection: each player receives its own hand and never another's, in every frame", "[sync][projection]") {
    CardTable t;
    auto& alice = t.join("alice");
    auto& bob = t.join("bob", 30ms);
    auto& carol = t.join("carol");  // a spectator: never sits
    t.hub.run_until_idle();
    REQUIRE(alice.has_view());
    REQUIRE(carol.has_view());
    REQUIRE(alice.dispatch(cards::sit()));
    REQUIRE(bob.dispatch(cards::sit()));
    t.hub.run_until_idle();
    REQUIRE(t.server.dispatch(krmx::server_dispatcher, cards::deal(ordered_deck())));
    t.hub.run_until_idle();
    CHECK(t.converged());
    CHECK(alice.view().hand.size() == cards::hand_size);
    CHECK(carol.view().hand.empty());
    CHECK(carol.view().held == std::map<std::string, std::size_t>{{"alice", 5}, {"bob", 5}});

    // Alice plays a matching card: applied at once on her client, confirmed by her delta.
    const auto& table = t.server.state();
    const int top = *alice.view().top;
    const auto& hand = table.hands.at("alice");
    const auto card = std::find_if(hand.begin(), hand.end(), [&](int c) { return cards::matches(c, top); });
    if (card == hand.end()) {
        REQUIRE(alice.dispatch(cards::draw()));
    } else {
        const int played = *card;
        REQUIRE(alice.dispatch(cards::play(played)));
        CHECK(alice.pending_count() == 1);
        CHECK(alice.view().top == played);                 // optimistic
        CHECK(alice.confirmed_view().top == top);          // not yet confirmed
        CHECK(alice.view().hand.size() == cards::hand_size - 1);
    }
    t.hub.run_until_idle();
    CHECK(t.converged());
    CHECK(alice.pending_count() == 0);
    CHECK(t.server.state().turn == 1);  // bob's turn now

    // Alice plays again, out of turn: applied at once, then refused with the reason, and her view goes back.
    std::string why;
    const auto sub = alice.on_invalidated([&](std::string_view, const json&, std::string_view reason) { why = reason; });
    const auto held = alice.view().hand.size();
    REQUIRE(alice.dispatch(cards::play(alice.view().hand.front())));
    CHECK(alice.view().hand.size() == held - 1);
    t.hub.run_until_idle();
    CHECK(why == "not your turn");
    CHECK(alice.statistics().invalidated == 1);
    CHECK(alice.view().hand.size() == held);
    CHECK(t.converged());

    // What each connection's frames add up to is exactly its view, and no frame carried another's hand.
    for (const char* name : {"alice", "bob", "carol"}) {
        CAPTURE(name);
        const auto& connection = t.hub.client(name);
        CHECK(replay_frames(connection) == json(cards::view(t.server.state(), name)));
        const auto seen = cards_seen_in_hands(connection);
        const auto own = t.server.state().hands.contains(name) ? t.server.state().hands.at(name) : std::vector<int>{};
        for (const auto& [player, cards_held] : t.server.state().hands) {
            if (player == name) continue;
            for (const int c : cards_held) {
                const bool was_own = std::find(own.begin(), own.end(), c) != own.end();
                CHECK((was_own || !seen.contains(c)));
            }
        }
    }
    CHECK(t.server.projection_statistics().view_failures == 0);
}

TEST_CASE("projection: equal views share one delta; a sender whose view did not change is released",
          "[sync][projection]") {
    krmx::testing::Hub hub;
    krmx::ProjectionDomain numbers{hub, "numbers", parity_model()};
    std::vector<std::unique_ptr<krmx::ProjectionClient<Number, json>>> clients;
    for (const char* name : {"anna", "bert", "cleo", "dirk"}) {
        auto& connection = hub.connect(name, 5ms);
        clients.push_back(std::make_unique<krmx::ProjectionClient<Number, json>>(connection, "numbers", parity_model()));
        connection.link();
    }
    hub.run_until_idle();
    CHECK(numbers.projection_statistics().sets_sent == 4);

    // +1: every view changes the same way: one delta computed for four users.
    REQUIRE(clients[0]->dispatch(add(1)));
    hub.run_until_idle();
    CHECK(numbers.projection_statistics().deltas_computed == 1);
    CHECK(numbers.projection_statistics().deltas_sent == 4);
    for (const auto& client : clients) CHECK(client->view() == json{{"even", false}});

    // +2: no view changes; only the sender hears, with the delta that changes nothing and its id.
    hub.client("anna").clear_received();
    hub.client("bert").clear_received();
    const auto sent = clients[0]->dispatch(add(2));
    REQUIRE(sent);
    hub.run_until_idle();
    CHECK(hub.client("bert").received().empty());
    const auto own = projection_messages(hub.client("anna"));
    REQUIRE(own.size() == 1);
    CHECK(own[0]["payload"]["delta"] == json::parse(krmx::no_change_delta));
    CHECK(own[0]["payload"]["optimisticId"] == *sent.optimistic_id);
    CHECK(clients[0]->pending_count() == 0);
    CHECK(clients[0]->statistics().deltas == 2);
}

// The frames a session hands to its connections, as shared texts.
struct RecordingSink final : krmx::net::SessionSink {
    std::vector<std::pair<krmx::net::ConnectionId, krmx::net::SharedText>> frames;
    void send(krmx::net::ConnectionId connection, krmx::net::SharedText text) override {
        frames.emplace_back(connection, std::move(text));
    }
    void close(krmx::net::ConnectionId, krmx::net::CloseReason) override {}
};

TEST_CASE("projection: a part of the views that changed alike is diffed once; equal deltas are one frame",
          "[sync][projection]") {
    RecordingSink sink;
    krmx::net::Session session{sink};
    krmx::DomainHost host{session};
    krmx::ProjectionDomain table{host, "cards", cards::model()};
    std::map<std::string, krmx::net::ConnectionId> connections;
    for (const char* name : {"alice", "bob", "carol", "dave"}) {  // carol and dave watch
        connections[name] = session.connect();
        session.receive(connections[name], json{{"type", "krmx/link"}, {"payload", {{"username", name}, {"version", "0.5.4"}}}}.dump());
    }
    REQUIRE(table.dispatch("alice", cards::sit()));
    REQUIRE(table.dispatch("bob", cards::sit()));
    REQUIRE(table.dispatch(krmx::server_dispatcher, cards::deal(ordered_deck())));
    const auto reused = table.projection_statistics().parts_reused;
    sink.frames.clear();

    // Alice draws: her hand changes, and for everyone how many cards she holds, the deck and the turn.
    REQUIRE(table.dispatch("alice", cards::draw()));
    // `held`: diffed for alice, reused for bob and carol (dave's whole view changed as carol's: hers is his).
    CHECK(table.projection_statistics().parts_reused - reused == 2);
    std::map<std::string, krmx::net::SharedText> frame;
    for (const auto& [name, id] : connections) {
        for (const auto& [connection, text] : sink.frames) {
            if (connection == id) {
                CHECK_FALSE(frame.contains(name));
                frame[name] = text;
            }
        }
    }
    REQUIRE(frame.size() == 4);
    CHECK(frame["bob"].get() == frame["carol"].get());  // bob's view differs (his hand), his delta does not
    CHECK(frame["carol"].get() == frame["dave"].get());
    CHECK(frame["alice"].get() != frame["bob"].get());
    CHECK(json::parse(*frame["alice"])["payload"]["delta"].contains("hand"));
    CHECK_FALSE(json::parse(*frame["bob"])["payload"]["delta"].contains("hand"));
}

TEST_CASE("projection: a view that throws skips that user only; a view too large for a message is not sent",
          "[sync][projection]") {
    krmx::testing::Hub hub{{.host = {.max_message_bytes = 4096}}};
    krmx::ProjectionDomain numbers{hub, "numbers", parity_model(), {.max_action_bytes = 1024}};
    std::map<std::string, std::unique_ptr<krmx::ProjectionClient<Number, json>>> clients;
    for (const char* name : {"ok", "broken", "big"}) {
        auto& connection = hub.connect(name, 5ms);
        clients.emplace(name, std::make_unique<krmx::ProjectionClient<Number, json>>(connection, "numbers", parity_model()));
        connection.link();
    }
    hub.run_until_idle();

    REQUIRE(clients.at("broken")->dispatch(add(3)));  // 3: broken's view throws
    hub.run_until_idle();
    CHECK(numbers.projection_statistics().view_failures == 1);
    CHECK(clients.at("ok")->view() == json{{"even", false}});
    CHECK(clients.at("broken")->view() == json{{"even", true}});  // its old view: skipped, not corrupted
    CHECK(clients.at("broken")->pending_count() == 0);           // but its action was released

    REQUIRE(clients.at("big")->dispatch(add(2)));  // 5: big's view is 8000 bytes, over the 4096 limit
    hub.run_until_idle();
    CHECK(numbers.projection_statistics().views_too_large == 1);
    CHECK(clients.at("big")->pending_count() == 0);
    for (const auto& text : hub.client("big").received()) CHECK(text.size() <= 4096);
    CHECK(clients.at("big")->view() == json{{"even", false}});  // from 3 (odd), which it got
    CHECK(clients.at("broken")->view() == json{{"even", false}});  // back in step at 5

    REQUIRE(clients.at("ok")->dispatch(add(1)));  // 6: big gets a delta from the view it holds
    hub.run_until_idle();
    CHECK(clients.at("big")->view() == json{{"even", true}});
    CHECK(clients.at("big")->statistics().bad_deltas == 0);
}

TEST_CASE("projection: members only; a non-member's action is refused, an admitted user gets its view",
          "[sync][projection][audience]") {
    CardTable t{{.audience = krmx::Audience::members}};
    (void)t.server.admit("alice");
    auto& alice = t.join("alice");
    auto& mallory = t.join("mallory");
    t.hub.run_until_idle();
    CHECK(alice.has_view());
    CHECK_FALSE(mallory.has_view());
    CHECK(projection_messages(t.hub.client("mallory")).empty());
    const auto refused = mallory.dispatch(cards::sit());
    CHECK_FALSE(refused);  // no view yet: nothing is sent
    auto& raw = t.hub.client("mallory");
    raw.send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"sit"},"optimisticId":"x1"}})");
    t.hub.run_until_idle();
    const auto answers = projection_messages(raw);
    REQUIRE(answers.size() == 1);
    CHECK(answers[0] == json::parse(R"({"type":"projection/invalidate","payload":{"domain":"cards","optimisticId":"x1",
                                       "reason":"not a member of domain \"cards\""}})"));
    CHECK(t.server.statistics().not_member == 1);
    CHECK(t.server.state().seats.empty());

    REQUIRE(t.server.admit("mallory"));
    t.hub.run_until_idle();
    CHECK(mallory.has_view());
    REQUIRE(mallory.dispatch(cards::sit()));
    t.hub.run_until_idle();
    CHECK(t.server.state().seats == std::vector<std::string>{"mallory"});
    CHECK(alice.view().held.contains("mallory"));

    REQUIRE(t.server.dismiss("mallory"));
    t.hub.run_until_idle();
    CHECK_FALSE(mallory.has_view());
    CHECK(mallory.statistics().dismissed == 1);
    CHECK_FALSE(t.server.view_of("mallory").has_value());
}

TEST_CASE("projection: bad input is refused or dropped and counted, never shown", "[sync][projection]") {
    CardTable t;
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    auto& raw = t.hub.client("alice");
    raw.clear_received();
    const auto send = [&](const std::string& text) {
        raw.send(text);
        t.hub.run_until_idle();
    };
    const std::string huge_id(200, 'x');
    send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"sit"},"optimisticId":")" + huge_id + "\"}}");
    send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"sit"},"optimisticId":17}})");
    CHECK(raw.received().empty());
    CHECK(t.server.statistics().dropped == 2);
    CHECK(t.server.state().seats.empty());

    send(R"({"type":"projection/action","payload":{"domain":"cards","optimisticId":"n1"}})");
    send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"fly"},"optimisticId":"n2"}})");
    send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"play","payload":"ace"},"optimisticId":"n3"}})");
    send(R"({"type":"projection/action","payload":{"domain":"nowhere","action":{"type":"sit"},"optimisticId":"n4"}})");
    const auto answers = projection_messages(raw);
    REQUIRE(answers.size() == 4);
    for (std::size_t i = 0; i < answers.size(); ++i) {
        CHECK(answers[i]["type"] == "projection/invalidate");
        CHECK(answers[i]["payload"]["optimisticId"] == "n" + std::to_string(i + 1));
    }
    CHECK(answers[3]["payload"]["reason"] == R"(unknown domain "nowhere")");
    CHECK(t.hub.host().statistics().unknown_domain == 1);

    // A stream client's append to a projection domain is told where to go.
    raw.clear_received();
    send(R"({"type":"stream/append","payload":{"domain":"cards","event":{"type":"sit"},"id":3}})");
    REQUIRE(raw.received().size() == 1);
    CHECK(json::parse(raw.received()[0])["payload"]["reason"] == R"(domain "cards" is a projection: send projection/action)");
    CHECK(t.server.state().seats.empty());

    // A refused action without optimisticId has nobody to answer; a delta that does not fit is not applied.
    raw.clear_received();
    send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"draw"}}})");
    CHECK(raw.received().empty());
    CHECK(t.server.projection_statistics().unanswered == 1);
    alice.receive(R"({"type":"projection/delta","payload":{"domain":"cards","delta":{"deck":[99,1]}}})");
    CHECK(alice.statistics().bad_deltas == 1);
    CHECK(alice.out_of_sync());
    CHECK(alice.view() == cards::view(t.server.state(), "alice"));
}

TEST_CASE("projection: durable: views show only stored actions, and a restart restores the hidden state",
          "[sync][projection][durable]") {
    krmx::MemoryEventStore store;
    cards::Table before;
    {
        CardTable t{{.durability = krmx::durable(store)}};
        auto& alice = t.join("alice");
        auto& bob = t.join("bob");
        t.hub.run_until_idle();
        REQUIRE(alice.dispatch(cards::sit()));
        REQUIRE(bob.dispatch(cards::sit()));
        // Whenever a client's view shows a seat, the store holds the action that made it.
        while (t.hub.step()) {
            const auto stored = store.read_stream("cards").size();
            CHECK(alice.confirmed_view().held.size() <= stored);
            CHECK(bob.confirmed_view().held.size() <= stored);
        }
        REQUIRE(t.server.dispatch(krmx::server_dispatcher, cards::deal(ordered_deck())));
        t.hub.run_until_idle();
        CHECK(t.converged());
        before = t.server.state();
        CHECK(store.read_stream("cards").size() == 3);
    }
    CardTable t{{.durability = krmx::durable(store)}};
    CHECK(t.server.state().hands == before.hands);
    CHECK(t.server.statistics().restored == 3);
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    CHECK(bob.view() == cards::view(before, "bob"));
    CHECK(bob.view().hand.size() == cards::hand_size);
}

// A projection domain with secrets (the card game: each hand is seen by its player only), attacked from
// both sides. The first byte picks the side; the rest is messages, one per line.
// - Even: a cheating player. Mallory is seated at the table and sends anything; after each of her messages
//   the honest players take their turn. Nothing may escape, every honest player's frames add up to exactly
//   its own view (and so does Mallory's, if she is still linked), a linked non-member hears nothing of the
//   domain, and a late joiner gets its view.
// - Odd: a hostile server. Bob's ProjectionClient reads the forged frames (with an action of its own
//   pending); nothing may escape, and once linked again to the honest server it holds exactly its view.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/core/json_delta.hpp>
#include <krmx/sync/projection_client.hpp>
#include <krmx/sync/projection_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "cards/cards.hpp"
#include "fuzz_support.hpp"

namespace {

using Client = krmx::ProjectionClient<cards::Table, cards::Seat>;
using Domain = krmx::ProjectionDomain<cards::Table, cards::Seat>;

template <class F>
void for_each_line(std::string_view input, F&& f) {
    std::size_t start = 0;
    while (start <= input.size()) {
        const auto end = std::min(input.find('\n', start), input.size());
        f(input.substr(start, end - start));
        start = end + 1;
    }
}

std::vector<int> shuffled_deck() {
    std::vector<int> deck(52);
    std::iota(deck.begin(), deck.end(), 0);
    for (std::size_t i = 0; i < deck.size(); ++i) std::swap(deck[i], deck[(i * 7 + 3) % deck.size()]);
    return deck;
}

// What the projection frames a connection received add up to; nullopt if a frame is no JSON or a delta does
// not fit (the server sent something broken).
std::optional<nlohmann::json> replay(const krmx::testing::ClientEndpoint& connection) {
    nlohmann::json view;
    for (const auto& text : connection.received()) {
        const auto message = nlohmann::json::parse(text, nullptr, false);
        if (message.is_discarded() || !message.is_object()) return std::nullopt;
        const auto type = message.value("type", std::string{});
        if (!type.starts_with("projection/")) continue;
        if (message.at("payload").at("domain") != "cards") continue;  // refusals for domains that do not exist
        if (type == "projection/set") view = message["payload"]["projection"];
        if (type == "projection/dismissed") view = nullptr;
        if (type == "projection/delta") {
            try {
                krmx::json_patch(view, message["payload"]["delta"]);
            } catch (const std::invalid_argument&) {
                return std::nullopt;
            }
        }
    }
    return view;
}

bool holds_own_view(const Domain& server, const Client& client, std::string_view name) {
    const auto expected = cards::view(server.shown_state(), name);
    return !client.out_of_sync() && client.pending_count() == 0 && client.view() == expected &&
           client.confirmed_view() == expected;
}

// Plays for `name` if it is its turn: a matching card, else a draw.
void take_turn(const Domain& server, Client& client, const std::string& name) {
    const auto& table = server.state();
    if (!table.dealt || table.winner || table.seats[table.turn] != name) return;
    for (const int card : table.hands.at(name)) {
        if (cards::matches(card, table.pile.back())) {
            (void)client.dispatch(cards::play(card));
            return;
        }
    }
    if (!table.deck.empty()) (void)client.dispatch(cards::draw());
}

void cheating_player(std::string_view input) {
    krmx::testing::Hub hub{{.host = {.max_message_bytes = 1 << 16}}};
    Domain server{hub, "cards", cards::model(), {.max_action_bytes = 1 << 12, .audience = krmx::Audience::members}};
    for (const char* name : {"mallory", "alice", "bob"}) (void)server.admit(name);
    auto& mallory = hub.connect("mallory");
    mallory.link();
    std::map<std::string, std::unique_ptr<Client>> players;
    for (const char* name : {"alice", "bob"}) {
        auto& connection = hub.connect(name);
        players.emplace(name, std::make_unique<Client>(connection, "cards", cards::model()));
        connection.link();
    }
    auto& carol = hub.connect("carol");  // linked, never admitted
    carol.link();
    hub.run_until_idle();
    mallory.send(R"({"type":"projection/action","payload":{"domain":"cards","action":{"type":"sit"},"optimisticId":"m"}})");
    hub.run_until_idle();
    for (auto& [name, client] : players) (void)client->dispatch(cards::sit());
    hub.run_until_idle();
    KRMX_FUZZ_CHECK(server.dispatch(krmx::server_dispatcher, cards::deal(shuffled_deck())));
    hub.run_until_idle();
    try {
        for_each_line(input, [&](std::string_view line) {
            mallory.send(std::string{line});
            hub.run_until_idle();
            for (auto& [name, client] : players) take_turn(server, *client, name);
            hub.run_until_idle();
        });
    } catch (...) {
        KRMX_FUZZ_CHECK(!"an exception escaped the server or a client");
    }
    for (const auto& [name, client] : players) {
        KRMX_FUZZ_CHECK(holds_own_view(server, *client, name));
        KRMX_FUZZ_CHECK(client->statistics().bad_deltas == 0 && client->statistics().ignored == 0);
        KRMX_FUZZ_CHECK(replay(hub.client(name)) == nlohmann::json(cards::view(server.shown_state(), name)));
    }
    if (mallory.linked()) {
        KRMX_FUZZ_CHECK(replay(hub.client("mallory")) == nlohmann::json(cards::view(server.shown_state(), "mallory")));
    }
    if (carol.linked()) KRMX_FUZZ_CHECK(replay(carol) == nlohmann::json());
    KRMX_FUZZ_CHECK(server.projection_statistics().view_failures == 0);

    (void)server.admit("late-joiner");
    auto& late_connection = hub.connect("late-joiner");
    Client late{late_connection, "cards", cards::model()};
    late_connection.link();
    hub.run_until_idle();
    if (late_connection.linked()) KRMX_FUZZ_CHECK(holds_own_view(server, late, "late-joiner"));
}

void hostile_server(std::string_view input) {
    krmx::testing::Hub hub;
    Domain server{hub, "cards", cards::model()};
    (void)server.dispatch("alice", cards::sit());
    auto& connection = hub.connect("bob");
    Client bob{connection, "cards", cards::model()};
    connection.link();
    hub.run_until_idle();
    (void)bob.dispatch(cards::sit());  // pending when the forged frames come
    try {
        for_each_line(input, [&](std::string_view line) { bob.receive(line); });
        hub.run_until_idle();
        connection.unlink();
        hub.run_until_idle();
        connection.link();
        (void)server.dispatch(krmx::server_dispatcher, cards::deal(shuffled_deck()));
        hub.run_until_idle();
    } catch (...) {
        KRMX_FUZZ_CHECK(!"an exception escaped the client");
    }
    KRMX_FUZZ_CHECK(holds_own_view(server, bob, "bob"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return -1;
    const std::string_view rest{reinterpret_cast<const char*>(data) + 1, size - 1};
    if (data[0] % 2 == 0) {
        cheating_player(rest);
    } else {
        hostile_server(rest);
    }
    return 0;
}

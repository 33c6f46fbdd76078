// `interop_peer server` (interop_peer.cpp), the C++ side of the Node interop tests (tests/net/js/interop.mjs):
// a WebSocketServer with the claimable counter domain in JavaScript compatibility mode (history as
// appends), an authentication hook with scripted answers, and a few commands on stdin. Prints
// `{"port":N}` once it listens; stops (gracefully) on `stop` or when stdin closes.
//
// Commands (one per line): `kick <user>`, `accept-new-users <0|1>`, `state` (prints the counter state
// as JSON), `messages` (prints the custom messages received), `admit <user>` and `dismiss <user>` (the
// domain "room", a claimable counter with an audience), `seat <user>` (admits the user to the projection
// domains "cards", the card game, and "parity", which shows each user whether a number is even), `deal`
// (deals the card game from a deck in a fixed order), `hands` (prints every hand), `view <user>` (prints
// the user's view of "cards"), `stop`.
// Authentication: auth "bad" is rejected with "bad token"; auth "silent" never answers (timeout 300 ms);
// auth "later" is accepted after 50 ms; anything else is accepted.
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/net/websocket_server.hpp>
#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/projection_domain.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "cards/cards.hpp"
#include "claimable_counter/counter.hpp"

namespace krmx_interop {

namespace {

struct Number {
    int value = 0;
};
inline constexpr krmx::EventType<int> add{"add"};

// Adding an even number changes nobody's view: its sender gets the delta that changes nothing.
const krmx::ProjectionModel<Number, nlohmann::json>& parity_model() {
    static const auto m = krmx::ProjectionModel<Number, nlohmann::json>{
        Number{}, [](const Number& n, std::string_view) { return nlohmann::json{{"even", n.value % 2 == 0}}; }}
                              .when(add, [](Number& n, std::string_view, int k) { n.value += k; });
    return m;
}

}  // namespace

int interop_server() {
    using namespace std::chrono_literals;
    krmx::net::WebSocketServerOptions options;
    options.session.authentication_timeout = 300ms;
    krmx::net::WebSocketServer* self = nullptr;
    options.session.authenticate = [&self](const krmx::net::LinkRequest& r, krmx::net::LinkDecision d) {
        if (r.auth == "bad") {
            d.reject("bad token");
        } else if (r.auth == "later") {
            self->after(50ms, [d] { d.accept(); });
        } else if (r.auth != "silent") {
            d.accept();
        }
    };
    krmx::net::WebSocketServer server{options};
    self = &server;
    // No flag for the JavaScript clients: they link without `features`, so they get histories as appends.
    krmx::StreamDomain<Counter> counter{server, "counter", counter::model()};
    krmx::StreamDomain<Counter> room{server, "room", counter::model(), {.audience = krmx::Audience::members}};
    // Members only, so that the session transcripts of other tests see no projection frames.
    krmx::ProjectionDomain table{server, "cards", cards::model(), {.audience = krmx::Audience::members}};
    krmx::ProjectionDomain parity{server, "parity", parity_model(), {.audience = krmx::Audience::members}};
    std::vector<nlohmann::json> messages;
    auto on_message = server.on_message([&](std::string_view user, const krmx::Message& read) {
        if (read.type().starts_with("stream/") || read.type().starts_with("projection/")) return;
        const auto message = nlohmann::json::parse(read.text());
        messages.push_back({{"user", user}, {"message", message}});
        // answers custom messages to the sender, so that both directions are seen
        server.send(user, nlohmann::json{{"type", "echo"}, {"payload", message}}.dump());
    });
    std::cout << nlohmann::json{{"port", server.port()}}.dump() << std::endl;

    std::thread commands([&] {
        std::string line;
        while (std::getline(std::cin, line)) {
            if (line == "stop") break;
            server.post([&, line] {
                if (line.starts_with("kick ")) {
                    (void)server.session().kick(line.substr(5));
                    std::cout << R"({"kicked":true})" << std::endl;
                } else if (line.starts_with("accept-new-users ")) {
                    server.session().accept_new_users(line.substr(17) == "1");
                    std::cout << R"({"ok":true})" << std::endl;
                } else if (line == "state") {
                    const auto& s = counter.state();
                    std::cout << nlohmann::json{{"counter", s.counter},
                                                {"claim",
                                                 s.claim ? nlohmann::json(*s.claim) : nlohmann::json()},
                                                {"size", counter.size()}}
                                     .dump()
                              << std::endl;
                } else if (line.starts_with("admit ")) {
                    std::cout << nlohmann::json{{"admitted", room.admit(line.substr(6))}}.dump() << std::endl;
                } else if (line.starts_with("dismiss ")) {
                    std::cout << nlohmann::json{{"dismissed", room.dismiss(line.substr(8))}}.dump() << std::endl;
                } else if (line.starts_with("seat ")) {
                    const auto user = line.substr(5);
                    const bool at_table = table.admit(user);  // both, even when one knew the user already
                    const bool at_parity = parity.admit(user);
                    std::cout << nlohmann::json{{"seated", at_table && at_parity}}.dump() << std::endl;
                } else if (line == "deal") {
                    std::vector<int> deck(52);
                    for (int i = 0; i < 52; ++i) deck[static_cast<std::size_t>(i)] = (i * 7) % 52;  // 7 and 52 are coprime
                    const auto dealt = table.dispatch(krmx::server_dispatcher, cards::deal(deck));
                    std::cout << nlohmann::json{{"dealt", static_cast<bool>(dealt)}, {"reason", dealt.reason()}}.dump()
                              << std::endl;
                } else if (line == "hands") {
                    std::cout << nlohmann::json{{"hands", table.state().hands}}.dump() << std::endl;
                } else if (line.starts_with("view ")) {
                    std::cout << nlohmann::json(cards::view(table.state(), line.substr(5))).dump() << std::endl;
                } else if (line == "messages") {
                    std::cout << nlohmann::json{{"messages", messages}}.dump() << std::endl;
                    messages.clear();
                }
            });
        }
        server.stop();
    });
    server.run();
    commands.join();
    std::cout << R"({"stopped":true})" << std::endl;
    return 0;
}

}  // namespace krmx_interop

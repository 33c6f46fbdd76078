// `interop_peer client PORT USERNAME` (interop_peer.cpp), the C++ client side of the Node interop tests: our
// WebSocketClient against the real @krmx/server@0.5.5 (started by tests/net/js/interop.mjs). Links, sends one custom
// message, waits for the server's answer, unlinks, and prints one JSON line with what it saw.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/net/websocket_client.hpp>

namespace krmx_interop {

int interop_client(int argc, char** argv) {
    using namespace std::chrono_literals;
    if (argc != 3) {
        std::cerr << "usage: interop_peer client PORT USERNAME\n";
        return 2;
    }
    try {
        krmx::net::WebSocketClient client;
        std::vector<std::string> messages;
        auto sub = client.on_message([&](std::string_view text) { messages.emplace_back(text); });
        client.connect("127.0.0.1", static_cast<std::uint16_t>(std::stoi(argv[1])));
        client.link(argv[2]);
        const bool linked = client.run_until([&] { return client.linked() || client.last_rejection(); }, 5s);
        if (!linked || !client.linked()) {
            std::cout << nlohmann::json{{"rejected", client.last_rejection().value_or("timeout")}}.dump()
                      << std::endl;
            return 1;
        }
        client.send(R"({"type":"hello","payload":{"from":"c++"}})");
        const bool answered = client.run_until([&] { return !messages.empty(); }, 5s);
        client.unlink();
        (void)client.run_until([&] { return !client.linked(); }, 5s);
        client.disconnect();
        std::cout << nlohmann::json{{"answered", answered},
                                    {"frames", client.session_frames()},
                                    {"messages", messages}}
                         .dump()
                  << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cout << nlohmann::json{{"error", e.what()}}.dump() << std::endl;
        return 1;
    }
}

}  // namespace krmx_interop

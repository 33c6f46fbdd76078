// A C++ player of the claimable counter: connects to a Krmx server (examples/counter_server, or any
// @krmx/server with the counter domain), links, plays a few moves optimistically and prints what it sees.
//
//   counter_bot [--host 127.0.0.1] [--port 8082] [--name bot] [--domain counter] [--moves 5]
//
// Exits 0 when every own move was confirmed and the bot agrees with the server's stream.
#include <iostream>
#include <string>

#include <krmx/net/websocket_client.hpp>
#include <krmx/sync/stream_client.hpp>

#include "claimable_counter/counter.hpp"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    std::string host = "127.0.0.1";
    std::string name = "bot";
    std::string domain = "counter";
    std::uint16_t port = 8082;
    int moves = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        const std::string value = argv[i + 1];
        if (arg == "--host")
            host = value;
        else if (arg == "--port")
            port = static_cast<std::uint16_t>(std::stoi(value));
        else if (arg == "--name")
            name = value;
        else if (arg == "--domain")
            domain = value;
        else if (arg == "--moves")
            moves = std::stoi(value);
        else {
            std::cerr << "unknown argument " << arg << "\n";
            return 2;
        }
    }
    try {
        krmx::net::WebSocketClient client;
        krmx::StreamClient<Counter> counter{client, domain, counter::model()};
        auto print = counter.on_confirmed_change([&](const Counter& s) {
            std::cout << name << " sees counter " << s.counter << (s.claim ? " claimed by " + *s.claim : "")
                      << " (" << counter.pending_count() << " pending)\n";
        });
        client.connect(host, port);
        client.link(name);
        if (!client.run_until([&] { return client.linked() || client.last_rejection(); }, 5s) ||
            !client.linked()) {
            std::cerr << "link refused: " << client.last_rejection().value_or("no answer") << "\n";
            return 1;
        }
        client.run_for(100ms);  // the history
        for (int i = 0; i < moves; ++i) {
            const auto result = counter.dispatch(counter::increment(1));
            std::cout << name << " increments: "
                      << (result ? std::string{"applied optimistically"}
                                 : std::string{result.result.reason()})
                      << "\n";
        }
        const bool settled = client.run_until([&] { return counter.pending_count() == 0; }, 5s);
        std::cout << name << " done: counter " << counter.state().counter << ", " << counter.confirmed_size()
                  << " events confirmed, " << counter.statistics().invalidated << " invalidated\n";
        client.leave();
        (void)client.run_until([&] { return !client.linked(); }, 2s);
        client.disconnect();
        return settled ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "counter_bot: " << e.what() << "\n";
        return 1;
    }
}

// The C++ side of the network load benchmark: what examples/counter_server runs, in memory only (the
// benchmark measures the network and stream path, not the disk). Prints {"port":N}; stops gracefully on
// SIGINT/SIGTERM.
#include <csignal>
#include <iostream>

#include <boost/asio/signal_set.hpp>

#include <krmx/net/websocket_server.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "claimable_counter/counter.hpp"

int main() {
    krmx::net::WebSocketServerOptions options;
    options.max_frames_per_second = 0;  // the load generator is no flood
    krmx::net::WebSocketServer server{options};
    krmx::StreamDomain<Counter> counter{server, "counter", counter::model()};
    boost::asio::signal_set signals{server.context(), SIGINT, SIGTERM};
    signals.async_wait([&server](const boost::system::error_code& ec, int) {
        if (!ec) server.stop();
    });
    std::cout << R"({"port":)" << server.port() << "}" << std::endl;
    server.run();
    return 0;
}

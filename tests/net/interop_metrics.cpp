// `interop_peer metrics FOLDER` (interop_peer.cpp), for tests/net/check_metrics.py: a server with metrics (token "t0ken") and two domains, one durable; it
// scrapes /metrics, plays events over a socket, scrapes again, and writes both scrapes into the folder it is
// given (before.txt, after.txt), plus a 401 check. The script parses them with a real Prometheus parser.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <boost/beast/http.hpp>

#include <krmx/net/metrics.hpp>
#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "claimable_counter/counter.hpp"
#include "http_client.hpp"
#include "net_support.hpp"

namespace krmx_interop {

int interop_metrics(const std::filesystem::path& out) {
    namespace http = boost::beast::http;
    krmx::MemoryEventStore store;
    krmx::net::WebSocketServerOptions options;
    options.log = {};
    options.health = true;
    ServerThread t{options};
    krmx::StreamDomain durable{t.server(), "counter", counter::model(), {.durability = krmx::durable(store)}};
    krmx::StreamDomain memory{t.server(), "scratch", counter::model()};
    krmx::net::Metrics metrics{t.server(), {.token = "t0ken", .cache_for = {}}};
    const auto guard = t.stop_guard();
    t.start();
    const std::vector<std::pair<std::string, std::string>> auth{{"Authorization", "Bearer t0ken"}};

    const auto scrape = [&](const char* name) {
        const auto a = krmx::testing::http_request(t.port(), http::verb::get, "/metrics", auth);
        if (a.status != 200) throw std::runtime_error("scrape answered " + std::to_string(a.status));
        std::ofstream{out / name} << a.body;
    };
    scrape("before.txt");
    if (krmx::testing::http_request(t.port(), http::verb::get, "/metrics").status != 401) {
        std::cerr << "a scrape without a token was not refused\n";
        return 1;
    }

    krmx::net::WebSocketClient a;
    krmx::StreamClient<Counter> alice{a, "counter", counter::model()};
    krmx::StreamClient<Counter> scratch{a, "scratch", counter::model()};
    a.connect("127.0.0.1", t.port());
    a.link("alice");
    if (!a.run_until([&] { return a.linked(); }, std::chrono::seconds{5})) return 1;
    for (int i = 0; i < 30; ++i) (void)alice.dispatch(counter::increment(1));
    for (int i = 0; i < 7; ++i) (void)scratch.dispatch(counter::increment(1));
    if (!a.run_until([&] { return alice.pending_count() == 0 && scratch.pending_count() == 0; },
                     std::chrono::seconds{10})) {
        std::cerr << "events were not confirmed\n";
        return 1;
    }
    scrape("after.txt");
    std::cout << "scraped\n";
    return 0;
}

}  // namespace krmx_interop

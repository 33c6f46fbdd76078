// The server's HTTP routes (serve_http) and health probes (/healthz, /readyz), over real loopback sockets:
// routes answer GET and HEAD before static files, other methods get 405, a throwing handler 500; readiness
// follows the durable domains' commits and the application's own checks, and a check that throws is counted.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include <boost/beast/http.hpp>

#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"
#include "http_client.hpp"
#include "net_support.hpp"
#include "pipeline_support.hpp"
#include "temp_dir.hpp"

namespace websocket_routes_tests {
namespace {

namespace http = boost::beast::http;
using krmx::testing::http_request;

}  // namespace

TEST_CASE("application routes answer GET and HEAD before static files", "[net][websocket][routes]") {
    const krmx::testing::TempDir dir;
    std::filesystem::create_directories(dir.path() / "site");
    std::ofstream{dir.path() / "site" / "status"} << "a file";
    krmx::net::WebSocketServerOptions options;
    options.static_files = dir.path() / "site";
    ServerThread t{options};
    t.server().serve_http("/status", [](const krmx::net::HttpRequest& request) {
        std::string body = std::string{request.method()} + " " + std::string{request.path()} + " " +
                           std::string{request.query()} + " " + std::string{request.header("x-probe").value_or("-")};
        return krmx::net::HttpResponse{202, "text/x-test", std::move(body), {{"X-Extra", "1"}}};
    });
    t.server().serve_http("/broken", [](const krmx::net::HttpRequest&) -> krmx::net::HttpResponse {
        throw std::runtime_error("bug");
    });
    const auto guard = t.stop_guard();
    t.start();

    const auto get = http_request(t.port(), http::verb::get, "/status?a=1", {{"X-Probe", "yes"}});
    CHECK(get.status == 202);
    CHECK(get.content_type == "text/x-test");
    CHECK(get.body == "GET /status a=1 yes");
    const auto head = http_request(t.port(), http::verb::head, "/status");
    CHECK(head.status == 202);
    CHECK(head.content_length == std::to_string(std::string{"HEAD /status  -"}.size()));
    CHECK(head.body.empty());
    CHECK(http_request(t.port(), http::verb::post, "/status").status == 405);
    CHECK(http_request(t.port(), http::verb::delete_, "/status").status == 405);
    const auto broken = http_request(t.port(), http::verb::get, "/broken");
    CHECK(broken.status == 500);
    CHECK(broken.body.find("bug") == std::string::npos);  // no internals to the outside
    // Other paths still go to the static files; a path that only starts like a route is no route.
    CHECK(http_request(t.port(), http::verb::get, "/status/x").status == 404);
    t.on_server([&] { t.server().stop_serving_http("/status"); });
    const auto file = http_request(t.port(), http::verb::get, "/status");
    CHECK(file.status == 200);
    CHECK(file.body == "a file");

    // An upgrade to a route's path is still a WebSocket.
    t.on_server([&] {
        t.server().serve_http("/krmx", [](const krmx::net::HttpRequest&) { return krmx::net::HttpResponse{}; });
    });
    krmx::net::WebSocketClient alice;
    alice.connect("127.0.0.1", t.port(), "/krmx");
    alice.link("alice");
    CHECK(alice.run_until([&] { return alice.linked(); }, 5s));

    const auto stats = t.on_server([&] { return t.server().statistics(); });
    CHECK(stats.http_routes_served == 3);  // GET, HEAD, the 500
    CHECK(stats.http_refused == 3);        // two 405s, one 404
    CHECK(stats.callback_errors == 1);
    CHECK(stats.http_files_served == 1);
    CHECK(stats.upgrades == 1);
}

TEST_CASE("health probes are off by default", "[net][websocket][health]") {
    ServerThread t;
    const auto guard = t.stop_guard();
    t.start();
    CHECK(http_request(t.port(), http::verb::get, "/healthz").status == 400);
    CHECK(http_request(t.port(), http::verb::get, "/readyz").status == 400);
}

TEST_CASE("/readyz follows the application's checks; a check that throws is not ready, counted",
          "[net][websocket][health]") {
    krmx::net::WebSocketServerOptions options;
    options.health = true;
    ServerThread t{options};
    std::optional<std::string> database_down;
    bool check_throws = false;
    t.server().add_readiness_check("database", [&]() -> std::optional<std::string> {
        if (check_throws) throw std::runtime_error("driver crashed");
        return database_down;
    });
    const auto guard = t.stop_guard();
    t.start();

    const auto live = http_request(t.port(), http::verb::get, "/healthz");
    CHECK(live.status == 200);
    CHECK(live.body == "ok\n");
    const auto ready = http_request(t.port(), http::verb::get, "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body == "ready\n");

    t.on_server([&] { database_down = "no\nconnection"; });  // one line per reason, whatever it holds
    const auto down = http_request(t.port(), http::verb::get, "/readyz");
    CHECK(down.status == 503);
    CHECK(down.body == "not ready\ndatabase: no connection\n");
    CHECK(http_request(t.port(), http::verb::get, "/healthz").status == 200);  // alive all the same

    t.on_server([&] { check_throws = true; });
    const auto thrown = http_request(t.port(), http::verb::get, "/readyz");
    CHECK(thrown.status == 503);
    CHECK(thrown.body == "not ready\ndatabase: check failed: driver crashed\n");

    t.on_server([&] {
        check_throws = false;
        database_down.reset();
    });
    CHECK(http_request(t.port(), http::verb::get, "/readyz").status == 200);
    const auto stats = t.on_server([&] { return t.server().statistics(); });
    CHECK(stats.readiness_check_errors == 1);
    CHECK(stats.callback_errors == 0);
}

TEST_CASE("a durable domain whose commit failed is not ready until a commit succeeds again",
          "[net][websocket][health][durable]") {
    krmx::MemoryEventStore base;
    krmx::testing::InstrumentedStore<krmx::MemoryEventStore> store{base};
    krmx::net::WebSocketServerOptions options;
    options.health = true;
    ServerThread t{options};
    krmx::StreamDomain domain{t.server(), "counter", counter::model(), {.durability = krmx::durable(store)}};
    const auto guard = t.stop_guard();
    t.start();

    CHECK(http_request(t.port(), http::verb::get, "/readyz").status == 200);
    store.fail_next("disk on fire");
    t.on_server([&] { (void)domain.dispatch(krmx::server_dispatcher, counter::increment(1)); });
    REQUIRE(eventually([&] { return t.on_server([&] { return domain.statistics().failed_commits; }) == 1; }));
    const auto failed = http_request(t.port(), http::verb::get, "/readyz");
    CHECK(failed.status == 503);
    CHECK(failed.body == "not ready\ndomain \"counter\": last commit failed: disk on fire\n");
    CHECK(http_request(t.port(), http::verb::get, "/healthz").status == 200);

    // The store is back: the next commit succeeds, and so does the probe.
    t.on_server([&] { (void)domain.dispatch(krmx::server_dispatcher, counter::increment(2)); });
    REQUIRE(eventually([&] { return t.on_server([&] { return domain.statistics().commits; }) == 1; }));
    const auto recovered = http_request(t.port(), http::verb::get, "/readyz");
    CHECK(recovered.status == 200);
    CHECK(recovered.body == "ready\n");
    CHECK(t.on_server([&] { return t.server().host().not_ready().empty(); }));
}

}  // namespace websocket_routes_tests

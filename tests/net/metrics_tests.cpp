// krmx::net::Metrics over real loopback sockets: the scrape holds the library's counters, gauges and latency
// histograms and moves with load; the token is required when set (401 otherwise, counted); a flood of
// scrapes renders once per cache interval; without a Metrics object the domains measure nothing.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/beast/http.hpp>

#include <krmx/net/metrics.hpp>
#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>
#include <krmx/sync/projection_client.hpp>
#include <krmx/sync/projection_domain.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "cards/cards.hpp"
#include "catch.hpp"
#include "claimable_counter/counter.hpp"
#include "http_client.hpp"
#include "net_support.hpp"

namespace metrics_tests {
namespace {

namespace http = boost::beast::http;
using krmx::testing::http_request;

// The value of the sample line that starts with `series` (name and labels exactly), or -1.
double sample(const std::string& text, const std::string& series) {
    std::size_t at = 0;
    while ((at = text.find(series + " ", at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
        at += series.size();
    }
    return -1;
}

}  // namespace

TEST_CASE("the metrics hold the library's counters, gauges and latencies, and move with load",
          "[net][websocket][metrics]") {
    krmx::MemoryEventStore store;
    ServerThread t;
    krmx::StreamDomain durable{t.server(), "counter", counter::model(), {.durability = krmx::durable(store)}};
    krmx::StreamDomain memory{t.server(), "scratch", counter::model()};
    krmx::net::Metrics metrics{t.server(), {.token = "s3cret", .cache_for = {}}};
    const auto guard = t.stop_guard();
    t.start();
    const std::vector<std::pair<std::string, std::string>> auth{{"Authorization", "Bearer s3cret"}};

    const auto before = http_request(t.port(), http::verb::get, "/metrics", auth);
    REQUIRE(before.status == 200);
    CHECK(before.content_type == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(sample(before.body, "krmx_server_frames_in_total") == 0);
    CHECK(sample(before.body, "krmx_domains") == 2);
    CHECK(sample(before.body, "krmx_domain_ready{domain=\"counter\"}") == 1);
    CHECK(sample(before.body, "krmx_ready") == 1);

    krmx::net::WebSocketClient a;
    krmx::StreamClient<Counter> alice{a, "counter", counter::model()};
    krmx::StreamClient<Counter> alice_scratch{a, "scratch", counter::model()};
    a.connect("127.0.0.1", t.port());
    a.link("alice");
    REQUIRE(a.run_until([&] { return a.linked(); }, 5s));
    for (int i = 0; i < 20; ++i) (void)alice.dispatch(counter::increment(1));
    for (int i = 0; i < 5; ++i) (void)alice_scratch.dispatch(counter::increment(1));
    REQUIRE(a.run_until([&] { return alice.pending_count() == 0 && alice_scratch.pending_count() == 0; }, 10s));

    const auto after = http_request(t.port(), http::verb::get, "/metrics", auth);
    REQUIRE(after.status == 200);
    const auto& m = after.body;
    CHECK(sample(m, "krmx_server_frames_in_total") >= 26);  // the link and 25 appends
    CHECK(sample(m, "krmx_server_upgrades_total") == 1);
    CHECK(sample(m, "krmx_session_links_total") == 1);
    CHECK(sample(m, "krmx_linked_users") == 1);
    CHECK(sample(m, "krmx_host_messages_total") == 25);
    CHECK(sample(m, "krmx_domain_accepted_total{domain=\"counter\"}") == 20);
    CHECK(sample(m, "krmx_domain_accepted_total{domain=\"scratch\"}") == 5);
    CHECK(sample(m, "krmx_domain_events{domain=\"counter\"}") == 20);
    CHECK(sample(m, "krmx_domain_history_bytes{domain=\"counter\"}") > 0);
    CHECK(sample(m, "krmx_domain_commits_total{domain=\"counter\"}") >= 1);
    CHECK(sample(m, "krmx_store_failed_checkpoints_total{domain=\"counter\"}") == 0);  // the store's own
    CHECK(sample(m, "krmx_store_failed_checkpoints_total{domain=\"scratch\"}") == -1);  // in memory: no store
    CHECK(sample(m, "krmx_append_confirm_seconds_count{domain=\"counter\"}") == 20);
    CHECK(sample(m, "krmx_append_confirm_seconds_count{domain=\"scratch\"}") == 5);
    CHECK(sample(m, "krmx_append_confirm_seconds_bucket{domain=\"counter\",le=\"+Inf\"}") == 20);
    CHECK(sample(m, "krmx_commit_seconds_count{domain=\"counter\"}") ==
          sample(m, "krmx_domain_commits_total{domain=\"counter\"}"));
    CHECK(sample(m, "krmx_commit_seconds_count{domain=\"scratch\"}") == -1);
    CHECK(sample(m, "krmx_log_written_total") >= 0);
    CHECK(sample(m, "krmx_metrics_scrapes_total") == 2);
    CHECK(m.find("# TYPE krmx_append_confirm_seconds histogram") != std::string::npos);
    CHECK(m.find("# TYPE krmx_server_frames_in_total counter") != std::string::npos);
    CHECK(m.find("# TYPE krmx_queued_bytes gauge") != std::string::npos);
}

TEST_CASE("a projection domain's own counters are metrics too", "[net][websocket][metrics]") {
    ServerThread t;
    krmx::ProjectionDomain table{t.server(), "cards", cards::model()};
    krmx::StreamDomain scratch{t.server(), "scratch", counter::model()};
    krmx::net::Metrics metrics{t.server(), {.cache_for = {}}};
    const auto guard = t.stop_guard();
    t.start();
    krmx::net::WebSocketClient a;
    krmx::ProjectionClient<cards::Table, cards::Seat> alice{a, "cards", cards::model()};
    a.connect("127.0.0.1", t.port());
    a.link("alice");
    REQUIRE(a.run_until([&] { return alice.has_view(); }, 5s));
    (void)alice.dispatch(cards::sit());
    REQUIRE(a.run_until([&] { return alice.pending_count() == 0; }, 5s));
    const auto m = http_request(t.port(), http::verb::get, "/metrics").body;
    CHECK(sample(m, "krmx_projection_sets_sent_total{domain=\"cards\"}") == 1);
    CHECK(sample(m, "krmx_projection_deltas_sent_total{domain=\"cards\"}") == 1);
    CHECK(sample(m, "krmx_projection_views_computed_total{domain=\"cards\"}") == 2);
    CHECK(sample(m, "krmx_projection_view_failures_total{domain=\"cards\"}") == 0);
    CHECK(sample(m, "krmx_domain_accepted_total{domain=\"cards\"}") == 1);
    CHECK(sample(m, "krmx_projection_sets_sent_total{domain=\"scratch\"}") == -1);  // a stream domain: none
}

TEST_CASE("a scrape without the right token gets 401, counted", "[net][websocket][metrics]") {
    ServerThread t;
    krmx::net::Metrics metrics{t.server(), {.token = "s3cret"}};
    const auto guard = t.stop_guard();
    t.start();
    const auto none = http_request(t.port(), http::verb::get, "/metrics");
    CHECK(none.status == 401);
    CHECK(none.www_authenticate == "Bearer realm=\"metrics\"");
    CHECK(none.body.find("krmx_") == std::string::npos);
    CHECK(http_request(t.port(), http::verb::get, "/metrics", {{"Authorization", "Bearer s3creT"}}).status == 401);
    CHECK(http_request(t.port(), http::verb::get, "/metrics", {{"Authorization", "Bearer s3cret2"}}).status == 401);
    CHECK(http_request(t.port(), http::verb::get, "/metrics", {{"Authorization", "Basic s3cret"}}).status == 401);
    CHECK(http_request(t.port(), http::verb::get, "/metrics", {{"Authorization", "Bearer "}}).status == 401);
    CHECK(http_request(t.port(), http::verb::get, "/metrics", {{"Authorization", "bearer s3cret"}}).status == 200);
    CHECK(http_request(t.port(), http::verb::post, "/metrics", {{"Authorization", "Bearer s3cret"}}).status == 405);
    const auto own = t.on_server([&] { return metrics.statistics(); });
    CHECK(own.refused == 5);
    CHECK(own.scrapes == 1);
}

TEST_CASE("a flood of scrapes renders once per cache interval", "[net][websocket][metrics]") {
    ServerThread t;
    krmx::net::Metrics metrics{t.server(), {.cache_for = std::chrono::hours{1}}};
    const auto guard = t.stop_guard();
    t.start();
    std::string first;
    for (int i = 0; i < 50; ++i) {
        const auto a = http_request(t.port(), http::verb::get, "/metrics");
        REQUIRE(a.status == 200);
        if (i == 0) first = a.body;
        CHECK(a.body == first);
    }
    const auto own = t.on_server([&] { return metrics.statistics(); });
    CHECK(own.scrapes == 50);
    CHECK(own.renderings == 1);
}

TEST_CASE("without metrics the domains measure nothing", "[net][websocket][metrics]") {
    ServerThread t;
    CHECK(t.server().host().observer() == nullptr);
    {
        krmx::net::Metrics metrics{t.server()};
        CHECK(t.server().host().observer() != nullptr);
    }
    CHECK(t.server().host().observer() == nullptr);
    t.start();
    const auto guard = t.stop_guard();
    CHECK(http_request(t.port(), http::verb::get, "/metrics").status == 400);  // the route went with it
}

}  // namespace metrics_tests

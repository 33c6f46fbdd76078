#pragma once
// krmx::net::Metrics: the server's counters, gauges and latency histograms in the Prometheus text format, on
// the server's own port. Needs the krmx::metrics CMake target (prometheus-cpp's core library).
//
//   krmx::net::WebSocketServer server{{.port = 8082}};
//   krmx::net::Metrics metrics{server, {.token = "s3cret"}};   // GET /metrics, Authorization: Bearer s3cret
//
// What it exposes (docs/metrics.md lists every family):
// - every counter the library already keeps (WebSocketServerStatistics, SessionStatistics,
//   DomainHostStatistics, each domain's StreamDomainStatistics and its store's StoreStatistics, labelled
//   domain="...", the Logger's statistics), read when scraped: the hot path pays nothing for them;
// - gauges: linked users, open sockets, queued outgoing bytes, domains, per domain its events, history
//   bytes, events waiting for their commit, commits in flight, readiness;
// - histograms: a user's append to its confirmation (durable: the commit included) and commit durations, per
//   domain, fed through the host's DomainObserver. Without a Metrics object no clock is read for them.
// - the application's own metrics: anything registered in registry().
//
// Scrapes are answered on the server's thread, so a rendering is kept for `cache_for` and served to every
// scrape meanwhile: a flood of scrapes costs one rendering per interval. With a token, a scrape without
// `Authorization: Bearer <token>` gets 401 (compared in constant time); scrapes and refusals are counted.
// Make and destroy it on the server's thread, or before run() / after it returned.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "krmx/core/clock.hpp"
#include "krmx/net/detail/bearer.hpp"
#include "krmx/net/http_route.hpp"
#include "krmx/net/websocket_server.hpp"
#include "krmx/sync/domain_report.hpp"

namespace krmx::net {

struct MetricsOptions {
    /// Where the metrics are served.
    std::string path = "/metrics";
    /// When not empty, scrapes must send `Authorization: Bearer <token>`; others get 401.
    std::string token = {};
    /// How long one rendering is served; zero: a fresh one for every scrape.
    Duration cache_for = std::chrono::seconds{1};
    /// Upper bounds, in seconds, of the latency histograms' buckets.
    std::vector<double> latency_buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5, 5.0};
};

/// The metrics endpoint's own counters (also exposed as krmx_metrics_*).
struct MetricsStatistics {
    std::uint64_t scrapes = 0;     ///< requests answered 200
    std::uint64_t refused = 0;     ///< requests without the right token: 401
    std::uint64_t renderings = 0;  ///< times the text was rendered (at most one per cache_for)
};

namespace detail {

// Families built at scrape time from the library's counters.
class MetricFamilies {
  public:
    using Labels = std::vector<prometheus::ClientMetric::Label>;

    void counter(std::string name, std::string help, double value, Labels labels = {}) {
        add(std::move(name), std::move(help), prometheus::MetricType::Counter, value, std::move(labels));
    }
    void gauge(std::string name, std::string help, double value, Labels labels = {}) {
        add(std::move(name), std::move(help), prometheus::MetricType::Gauge, value, std::move(labels));
    }
    [[nodiscard]] std::vector<prometheus::MetricFamily> take() {
        std::vector<prometheus::MetricFamily> out;
        out.reserve(families_.size());
        for (auto& [name, family] : families_) out.push_back(std::move(family));
        families_.clear();
        return out;
    }

  private:
    void add(std::string name, std::string help, prometheus::MetricType type, double value, Labels labels) {
        auto& family = families_[name];
        if (family.name.empty()) {
            family.name = std::move(name);
            family.help = std::move(help);
            family.type = type;
        }
        prometheus::ClientMetric metric;
        metric.label = std::move(labels);
        if (type == prometheus::MetricType::Counter) {
            metric.counter.value = value;
        } else {
            metric.gauge.value = value;
        }
        family.metric.push_back(std::move(metric));
    }

    std::map<std::string, prometheus::MetricFamily> families_;  // name order: a stable text
};

// The library's counters and gauges, read when collected (on the server's thread).
class ServerCollectable final : public prometheus::Collectable {
  public:
    ServerCollectable(WebSocketServer& server, const MetricsStatistics& own) : server_(server), own_(own) {}

    [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override {
        MetricFamilies f;
        const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
        const auto& s = server_.statistics();
#define KRMX_SERVER_COUNTER(field, help) f.counter("krmx_server_" #field "_total", help, d(s.field))
        KRMX_SERVER_COUNTER(sockets_accepted, "Sockets accepted.");
        KRMX_SERVER_COUNTER(upgrades, "Sockets that became WebSocket connections.");
        KRMX_SERVER_COUNTER(refused_full, "Sockets closed before the upgrade: over max_connections.");
        KRMX_SERVER_COUNTER(refused_address_full, "Sockets refused: over max_connections_per_address.");
        KRMX_SERVER_COUNTER(refused_origin, "Upgrades refused for their Origin (HTTP 403).");
        KRMX_SERVER_COUNTER(forwarded_invalid, "Requests of a trusted proxy without a usable X-Forwarded-For.");
        KRMX_SERVER_COUNTER(refused_path, "Upgrades for the wrong path (HTTP 400).");
        KRMX_SERVER_COUNTER(refused_not_websocket, "Plain HTTP requests without static files or route (HTTP 400).");
        KRMX_SERVER_COUNTER(refused_query, "Upgrades whose query parameters were not as required: dropped.");
        KRMX_SERVER_COUNTER(handshake_failures, "Broken or too slow HTTP requests and upgrades.");
        KRMX_SERVER_COUNTER(http_files_served, "Static files answered.");
        KRMX_SERVER_COUNTER(http_refused, "Static and route requests answered 4xx/5xx by the server.");
        KRMX_SERVER_COUNTER(http_routes_served, "Requests answered by an application route (health, metrics).");
        KRMX_SERVER_COUNTER(readiness_check_errors, "Readiness checks that threw.");
        KRMX_SERVER_COUNTER(binary_frames, "Connections closed for a binary frame (1003).");
        KRMX_SERVER_COUNTER(oversized_frames, "Connections closed for a frame over max_message_bytes (1009).");
        KRMX_SERVER_COUNTER(invalid_utf8, "Connections closed for invalid UTF-8 (1007).");
        KRMX_SERVER_COUNTER(floods, "Connections closed for more than max_frames_per_second (1008).");
        KRMX_SERVER_COUNTER(missed_pongs, "Connections closed by the keep-alive.");
        KRMX_SERVER_COUNTER(slow_readers, "Connections dropped: outgoing queue over max_queued_bytes.");
        KRMX_SERVER_COUNTER(link_deadline_closes, "Connections closed by the session's link deadline.");
        KRMX_SERVER_COUNTER(other_errors, "Sockets that failed otherwise (reset by peer, ...).");
        KRMX_SERVER_COUNTER(frames_in, "WebSocket frames received.");
        KRMX_SERVER_COUNTER(frames_out, "WebSocket text frames sent.");
        KRMX_SERVER_COUNTER(bytes_in, "WebSocket payload bytes received.");
        KRMX_SERVER_COUNTER(bytes_out, "WebSocket bytes sent (frame headers included).");
        KRMX_SERVER_COUNTER(memory_returns, "Times free memory went back to the system after a burst.");
        KRMX_SERVER_COUNTER(callback_errors, "Application code called by the server that threw.");
#undef KRMX_SERVER_COUNTER
        auto& session = server_.session();
        const auto& ss = session.statistics();
#define KRMX_SESSION_COUNTER(field, help) f.counter("krmx_session_" #field "_total", help, d(ss.field))
        KRMX_SESSION_COUNTER(connections_opened, "Connections the session was told of.");
        KRMX_SESSION_COUNTER(connections_closed, "Connections closed.");
        KRMX_SESSION_COUNTER(joins, "Users that joined.");
        KRMX_SESSION_COUNTER(links, "Successful links (first ones and relinks).");
        KRMX_SESSION_COUNTER(unlinks, "Unlinks.");
        KRMX_SESSION_COUNTER(leaves, "Users that left (forgotten ones included).");
        KRMX_SESSION_COUNTER(messages, "Custom messages handed to the application.");
        KRMX_SESSION_COUNTER(rejected_invalid_message, "Link rejections: invalid message.");
        KRMX_SESSION_COUNTER(rejected_unlinked_connection, "Link rejections: message on an unlinked connection.");
        KRMX_SESSION_COUNTER(rejected_link_rate, "Link rejections: over link_attempts_per_address_per_second.");
        KRMX_SESSION_COUNTER(rejected_invalid_link_request, "Link rejections: invalid link request.");
        KRMX_SESSION_COUNTER(rejected_version, "Link rejections: protocol version.");
        KRMX_SESSION_COUNTER(rejected_username, "Link rejections: username.");
        KRMX_SESSION_COUNTER(rejected_not_accepting, "Link rejections: not accepting new users.");
        KRMX_SESSION_COUNTER(rejected_already_linked, "Link rejections: already linked.");
        KRMX_SESSION_COUNTER(rejected_new_user_rate, "Link rejections: over new_users_per_address_per_minute.");
        KRMX_SESSION_COUNTER(rejected_authentication, "Link rejections: the authentication hook's.");
        KRMX_SESSION_COUNTER(authentication_timeouts, "Authentication hooks that did not answer in time.");
        KRMX_SESSION_COUNTER(unlinked_by_bad_message, "Users unlinked for an unparsable or reserved message.");
        KRMX_SESSION_COUNTER(ignored_while_authenticating, "Frames ignored while authenticating.");
        KRMX_SESSION_COUNTER(link_deadline_closes, "Connections closed by the link deadline.");
        KRMX_SESSION_COUNTER(undeliverable, "Sends to users that were not linked: dropped.");
        KRMX_SESSION_COUNTER(forgotten_users, "Unlinked users forgotten.");
        KRMX_SESSION_COUNTER(hook_errors, "Authentication hooks that threw.");
        KRMX_SESSION_COUNTER(callback_errors, "Application session callbacks that threw.");
#undef KRMX_SESSION_COUNTER
        const auto& hs = server_.host().statistics();
#define KRMX_HOST_COUNTER(field, help) f.counter("krmx_host_" #field "_total", help, d(hs.field))
        KRMX_HOST_COUNTER(messages, "Messages received from users.");
        KRMX_HOST_COUNTER(oversized, "Messages over max_message_bytes: dropped unread.");
        KRMX_HOST_COUNTER(other_protocol, "Messages that are no stream/* message.");
        KRMX_HOST_COUNTER(malformed, "stream/* messages that name no domain.");
        KRMX_HOST_COUNTER(unknown_domain, "Messages for a domain the host does not have.");
        KRMX_HOST_COUNTER(invalidates_sent, "Invalidations of appends for unknown domains.");
#undef KRMX_HOST_COUNTER
        const auto reports = server_.host().reports();
        for (const auto& r : reports) {
            const MetricFamilies::Labels label{{"domain", std::string{r.name}}};
            const auto& ds = r.statistics;
#define KRMX_DOMAIN_COUNTER(field, help) f.counter("krmx_domain_" #field "_total", help, d(ds.field), label)
            KRMX_DOMAIN_COUNTER(accepted, "Events confirmed.");
            KRMX_DOMAIN_COUNTER(restored, "Events loaded from the store when the domain was made.");
            KRMX_DOMAIN_COUNTER(unknown_type, "Events refused: no handler for the type.");
            KRMX_DOMAIN_COUNTER(invalid_payload, "Events refused: payload does not fit the type.");
            KRMX_DOMAIN_COUNTER(malformed, "Events refused: malformed.");
            KRMX_DOMAIN_COUNTER(rejected, "Events refused by a guard or handler.");
            KRMX_DOMAIN_COUNTER(failed, "Events refused: a handler threw.");
            KRMX_DOMAIN_COUNTER(not_stored, "Events taken back because their commit failed.");
            KRMX_DOMAIN_COUNTER(too_large, "Events refused: too large, too deep, or the history is full.");
            KRMX_DOMAIN_COUNTER(reserved_name, "Events refused: a user named like the server.");
            KRMX_DOMAIN_COUNTER(resyncs, "stream/resync requests answered.");
            KRMX_DOMAIN_COUNTER(invalidates_sent, "stream/invalidate messages sent.");
            KRMX_DOMAIN_COUNTER(dropped, "Refused appends without a readable id.");
            KRMX_DOMAIN_COUNTER(histories_sent, "Histories sent.");
            KRMX_DOMAIN_COUNTER(commits, "Batches stored.");
            KRMX_DOMAIN_COUNTER(failed_commits, "Batches taken back because their commit failed.");
            KRMX_DOMAIN_COUNTER(redispatched, "Events dispatched again after a failed commit before them.");
            KRMX_DOMAIN_COUNTER(not_member, "Events refused: the sender is outside the domain's audience.");
            KRMX_DOMAIN_COUNTER(not_member_resyncs, "Resyncs left unanswered: the sender is outside the audience.");
            KRMX_DOMAIN_COUNTER(history_reads, "Pages of old events read back from the store (durable).");
            KRMX_DOMAIN_COUNTER(history_read_failures, "Reads of old events that failed: that user hears nothing until a read succeeds (tried again after the next commit, and after 100 ms to 5 s where the transport has timers).");
            KRMX_DOMAIN_COUNTER(snapshots_sent, "stream/snapshot states sent to joiners instead of old events.");
#undef KRMX_DOMAIN_COUNTER
            f.gauge("krmx_domain_events", "Events accepted (including those waiting for their commit).",
                    static_cast<double>(r.events), label);
            f.gauge("krmx_domain_history_bytes", "Bytes of event texts and dispatchers held in memory.",
                    static_cast<double>(r.history_bytes), label);
            f.gauge("krmx_domain_held_events", "Events held in memory (durable domains let older ones go).",
                    static_cast<double>(r.events - r.held_from), label);
            f.gauge("krmx_domain_uncommitted_events", "Events waiting for their commit.",
                    static_cast<double>(r.uncommitted), label);
            f.gauge("krmx_domain_commits_in_flight", "Commits in flight (0 or 1).", r.committing ? 1.0 : 0.0, label);
            f.gauge("krmx_domain_ready", "1 when the domain can serve (its last commit did not fail).",
                    r.not_ready ? 0.0 : 1.0, label);
            if (r.store) {
                const auto& st = *r.store;
#define KRMX_STORE_COUNTER(field, help) f.counter("krmx_store_" #field "_total", help, d(st.field), label)
                KRMX_STORE_COUNTER(error_handler_failures, "Subscription on_error handlers that threw.");
                KRMX_STORE_COUNTER(failed_checkpoints, "WAL checkpoints that failed (SQLite).");
                KRMX_STORE_COUNTER(connection_retries, "Operations repeated on a new connection (PostgreSQL).");
                KRMX_STORE_COUNTER(listener_failures, "Failures of the append listener (PostgreSQL).");
#undef KRMX_STORE_COUNTER
            }
            if (r.snapshots) {
                const auto& ss = *r.snapshots;
#define KRMX_SNAPSHOT_COUNTER(field, help) f.counter("krmx_snapshot_" #field "_total", help, d(ss.field), label)
                KRMX_SNAPSHOT_COUNTER(saved, "Snapshots saved.");
                KRMX_SNAPSHOT_COUNTER(save_failures, "Snapshots that could not be written or saved (the previous one stays).");
                KRMX_SNAPSHOT_COUNTER(restored, "Restarts that began from a snapshot.");
                KRMX_SNAPSHOT_COUNTER(damaged, "Snapshots skipped: damaged or incomplete.");
                KRMX_SNAPSHOT_COUNTER(other_revision, "Snapshots skipped: of another revision of the model.");
                KRMX_SNAPSHOT_COUNTER(not_following, "Snapshots skipped: the store does not hold the event they follow.");
                KRMX_SNAPSHOT_COUNTER(unreadable, "Snapshots skipped: the model's from_json refused them.");
#undef KRMX_SNAPSHOT_COUNTER
            }
            if (r.projection) {
                const auto& ps = *r.projection;
#define KRMX_PROJECTION_COUNTER(field, help) f.counter("krmx_projection_" #field "_total", help, d(ps.field), label)
                KRMX_PROJECTION_COUNTER(sets_sent, "projection/set messages: on hearing, and for deltas too large to send.");
                KRMX_PROJECTION_COUNTER(deltas_sent, "projection/delta messages.");
                KRMX_PROJECTION_COUNTER(deltas_computed, "Deltas computed: one per distinct change of a view per batch.");
                KRMX_PROJECTION_COUNTER(parts_reused, "Members of views whose delta was computed once for users whose views changed there alike.");
                KRMX_PROJECTION_COUNTER(views_computed, "View function calls.");
                KRMX_PROJECTION_COUNTER(view_failures, "View functions that threw: that user's update was skipped.");
                KRMX_PROJECTION_COUNTER(views_too_large, "Views that fit in no message: not sent.");
                KRMX_PROJECTION_COUNTER(unanswered, "Refused actions without an optimisticId: nothing to answer.");
#undef KRMX_PROJECTION_COUNTER
            }
        }
        const auto ls = server_.log().statistics();
        f.counter("krmx_log_written_total", "Log records given to the sink.", d(ls.written));
        f.counter("krmx_log_suppressed_total", "Log records left out by the per-event budget.", d(ls.suppressed));
        f.counter("krmx_log_sink_errors_total", "Log records whose sink threw.", d(ls.sink_errors));
        f.counter("krmx_metrics_scrapes_total", "Metrics requests answered.", d(own_.scrapes));
        f.counter("krmx_metrics_refused_total", "Metrics requests refused for their token (401).", d(own_.refused));
        f.counter("krmx_metrics_renderings_total", "Times the metrics text was rendered.", d(own_.renderings));
        f.gauge("krmx_linked_users", "Users linked now.", static_cast<double>(session.linked_count()));
        f.gauge("krmx_connections", "WebSocket connections the session holds now.",
                static_cast<double>(session.connection_count()));
        f.gauge("krmx_server_open_sockets", "Sockets open now (upgrading and plain HTTP included).", d(s.open));
        f.gauge("krmx_queued_bytes", "Outgoing bytes the connections' sockets have not taken yet.",
                static_cast<double>(server_.queued_bytes()));
        f.gauge("krmx_domains", "Domains served.", static_cast<double>(reports.size()));
        f.gauge("krmx_ready", "1 when /readyz would answer 200.", server_.not_ready().empty() ? 1.0 : 0.0);
        return f.take();
    }

  private:
    WebSocketServer& server_;
    const MetricsStatistics& own_;
};

}  // namespace detail

class Metrics final : private DomainObserver {
  public:
    /// Serves `options.path` on `server` and times its domains' appends and commits from now on (the host
    /// has one observer: a second Metrics on the same server takes the histograms over).
    explicit Metrics(WebSocketServer& server, MetricsOptions options = {})
        : server_(server),
          options_(std::move(options)),
          registry_(std::make_shared<prometheus::Registry>()),
          collectable_(server, statistics_),
          append_family_(prometheus::BuildHistogram()
                             .Name("krmx_append_confirm_seconds")
                             .Help("From a user's stream/append reaching its domain to its confirmation (durable: "
                                   "the commit included).")
                             .Register(*registry_)),
          commit_family_(prometheus::BuildHistogram()
                             .Name("krmx_commit_seconds")
                             .Help("Durations of durable commits, stored or failed.")
                             .Register(*registry_)) {
        server_.serve_http(options_.path, [this](const HttpRequest& request) { return scrape(request); });
        server_.host().observe(this);
    }
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;
    ~Metrics() override {
        if (server_.host().observer() == this) server_.host().observe(nullptr);  // unless replaced since
        server_.stop_serving_http(options_.path);
    }

    /// A fresh rendering (the endpoint serves cached ones).
    [[nodiscard]] std::string render() {
        ++statistics_.renderings;
        auto families = registry_->Collect();
        auto ours = collectable_.Collect();
        families.insert(families.end(), std::make_move_iterator(ours.begin()), std::make_move_iterator(ours.end()));
        std::ostringstream out;
        prometheus::TextSerializer{}.Serialize(out, families);
        return std::move(out).str();
    }
    /// The application's own metrics go here; they are served with the library's.
    [[nodiscard]] prometheus::Registry& registry() noexcept { return *registry_; }
    [[nodiscard]] const MetricsStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] const MetricsOptions& options() const noexcept { return options_; }

  private:
    HttpResponse scrape(const HttpRequest& request) {
        if (!options_.token.empty()) {
            const auto authorization = request.header("Authorization");
            const auto token = authorization ? detail::bearer_token(*authorization) : std::nullopt;
            if (!token || !detail::constant_time_equal(*token, options_.token)) {
                ++statistics_.refused;
                return HttpResponse{401, "text/plain; charset=utf-8", "unauthorized\n",
                                    {{"WWW-Authenticate", "Bearer realm=\"metrics\""}}};
            }
        }
        ++statistics_.scrapes;
        const auto now = Clock::now();
        if (!rendered_at_ || options_.cache_for <= Duration::zero() || now - *rendered_at_ >= options_.cache_for) {
            cached_ = render();
            rendered_at_ = now;
        }
        return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", cached_};
    }

    void append_confirmed(std::string_view domain, Duration elapsed) noexcept override {
        observe(append_family_, append_, domain, elapsed);
    }
    void commit_ended(std::string_view domain, Duration elapsed, bool) noexcept override {
        observe(commit_family_, commit_, domain, elapsed);
    }

    using Histograms = std::map<std::string, prometheus::Histogram*, std::less<>>;
    void observe(prometheus::Family<prometheus::Histogram>& family, Histograms& histograms, std::string_view domain,
                 Duration elapsed) noexcept {
        try {
            auto it = histograms.find(domain);
            if (it == histograms.end()) {
                auto& h = family.Add({{"domain", std::string{domain}}},
                                     prometheus::Histogram::BucketBoundaries{options_.latency_buckets});
                it = histograms.emplace(std::string{domain}, &h).first;
            }
            it->second->Observe(std::chrono::duration<double>(elapsed).count());
        } catch (...) {
            // Out of memory for a new domain's histogram: the sample is lost, the domain goes on.
        }
    }

    WebSocketServer& server_;
    MetricsOptions options_;
    MetricsStatistics statistics_;
    std::shared_ptr<prometheus::Registry> registry_;
    detail::ServerCollectable collectable_;
    prometheus::Family<prometheus::Histogram>& append_family_;
    prometheus::Family<prometheus::Histogram>& commit_family_;
    Histograms append_;
    Histograms commit_;
    std::string cached_;
    std::optional<TimePoint> rendered_at_;
};

}  // namespace krmx::net

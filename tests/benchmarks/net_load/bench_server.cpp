// The C++ side of the network load benchmark: what examples/counter_server runs, in memory only (the
// benchmark measures the network and stream path, not the disk). Prints {"port":N}; stops gracefully on
// SIGINT/SIGTERM. Always on 127.0.0.1.
//
//   krmx_net_bench_server [--internet] [--forget-after SECONDS] [--stats] [--metrics] [--rooms R --room-size K]
//
// Without options: the load generator's server (no frame rate limit: the closed loop is no flood).
// --internet: the safe options of an internet-facing server (the hostile load test, run_hostile_load.sh).
// --forget-after: unlinked users are forgotten after this long (instead of internet_facing's 2 minutes, so
//   that the hostile load test's spray scenario need not wait).
// --metrics: krmx::net::Metrics on /metrics (histograms timed on the hot path; run_metrics_load.sh compares
//   with and without). Only when built with krmx::metrics.
// --rooms R --room-size K: R rooms besides "counter", each the domain "room<r>" with an audience (the
//   counter model), and the load generator's players load<r*K> .. load<r*K+K-1> admitted to room r before
//   they link (krmx_net_load --room-size K).
// --stats: one JSON line of the server's statistics on SIGUSR1 and when it stops ({"statistics":{...}}).
#include <chrono>
#include <csignal>
#include <cstddef>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/signal_set.hpp>

#include <nlohmann/json.hpp>

#include <krmx/net/internet_facing.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "claimable_counter/counter.hpp"
#if defined(KRMX_BENCH_METRICS)
#include <krmx/net/metrics.hpp>
#endif

namespace {

nlohmann::json statistics_json(krmx::net::WebSocketServer& server, std::optional<double> forget_after,
                               bool forget_applied) {
    const auto& w = server.statistics();
    const auto& s = server.session().statistics();
    return nlohmann::json{
        {"statistics",
         {{"users", server.session().users().size()},
          {"linked", server.session().linked_count()},
          {"connections", server.session().connection_count()},
          {"open_sockets", w.open},
          {"sockets_accepted", w.sockets_accepted},
          {"upgrades", w.upgrades},
          {"refused_full", w.refused_full},
          {"refused_address_full", w.refused_address_full},
          {"refused_origin", w.refused_origin},
          {"handshake_failures", w.handshake_failures},
          {"oversized_frames", w.oversized_frames},
          {"floods", w.floods},
          {"slow_readers", w.slow_readers},
          {"missed_pongs", w.missed_pongs},
          {"link_deadline_closes", w.link_deadline_closes},
          {"other_errors", w.other_errors},
          {"frames_in", w.frames_in},
          {"frames_out", w.frames_out},
          {"memory_returns", w.memory_returns},
          {"joins", s.joins},
          {"links", s.links},
          {"unlinks", s.unlinks},
          {"leaves", s.leaves},
          {"rejected", s.rejected()},
          {"rejected_link_rate", s.rejected_link_rate},
          {"rejected_new_user_rate", s.rejected_new_user_rate},
          {"forgotten_users", s.forgotten_users},
          {"tracked_addresses", server.session().tracked_addresses()},
          {"forget_after_s", forget_after ? nlohmann::json(*forget_after) : nlohmann::json()},
          {"forget_applied", forget_applied}}}};
}

}  // namespace

int main(int argc, char** argv) {
    bool internet = false;
    bool stats = false;
    bool metrics = false;
    std::optional<double> forget_after;
    int rooms = 0;
    int room_size = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--internet") {
            internet = true;
        } else if (arg == "--stats") {
            stats = true;
        } else if (arg == "--metrics") {
            metrics = true;
        } else if (arg == "--forget-after" && i + 1 < argc) {
            forget_after = std::stod(argv[++i]);
        } else if (arg == "--rooms" && i + 1 < argc) {
            rooms = std::stoi(argv[++i]);
        } else if (arg == "--room-size" && i + 1 < argc) {
            room_size = std::stoi(argv[++i]);
        } else {
            std::cerr << "usage: krmx_net_bench_server [--internet] [--forget-after SECONDS] [--stats] [--metrics]\n"
                         "         [--rooms R --room-size K]\n";
            return 2;
        }
    }
    if ((rooms > 0) != (room_size > 0)) {
        std::cerr << "krmx_net_bench_server: --rooms and --room-size go together\n";
        return 2;
    }
    krmx::net::WebSocketServerOptions options;
    options.max_frames_per_second = 0;  // the load generator is no flood
    if (internet) options = krmx::net::internet_facing();
    options.address = "127.0.0.1";  // a benchmark never listens beyond this machine
    bool forget_applied = false;
    if (forget_after) {
        options.session.forget_unlinked_after =
            std::chrono::duration_cast<krmx::Duration>(std::chrono::duration<double>(*forget_after));
        forget_applied = true;  // run_hostile_load.sh reads it from the statistics
    }
    krmx::net::WebSocketServer server{options};
    krmx::StreamDomain<Counter> counter{server, "counter", counter::model()};
    std::vector<std::unique_ptr<krmx::StreamDomain<Counter>>> room_domains;
    for (int r = 0; r < rooms; ++r) {
        auto& room = *room_domains.emplace_back(std::make_unique<krmx::StreamDomain<Counter>>(
            server, "room" + std::to_string(r), counter::model(),
            krmx::StreamDomainOptions{.audience = krmx::Audience::members}));
        for (int p = 0; p < room_size; ++p) (void)room.admit("load" + std::to_string(r * room_size + p));
    }
#if defined(KRMX_BENCH_METRICS)
    std::optional<krmx::net::Metrics> exposed;
    if (metrics) exposed.emplace(server);
#else
    if (metrics) {
        std::cerr << "krmx_net_bench_server: built without krmx::metrics\n";
        return 2;
    }
#endif
    boost::asio::signal_set signals{server.context(), SIGINT, SIGTERM};
    signals.async_wait([&server](const boost::system::error_code& ec, int) {
        if (!ec) server.stop();
    });
    boost::asio::signal_set report{server.context()};
    std::function<void()> wait_report = [&] {
        report.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec) return;
            std::cout << statistics_json(server, forget_after, forget_applied).dump() << std::endl;
            wait_report();
        });
    };
    if (stats) {
        report.add(SIGUSR1);
        wait_report();
    }
    std::cout << R"({"port":)" << server.port() << "}" << std::endl;
    server.run();
    if (stats) std::cout << statistics_json(server, forget_after, forget_applied).dump() << std::endl;
    return 0;
}

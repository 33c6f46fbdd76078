// The claimable counter as a real networked Krmx server: @krmx/client (browsers, Node) and
// krmx::net::WebSocketClient (examples/counter_bot) connect to it. Durable on SQLite by default.
//
//   counter_server [--port 8082] [--store counter.sqlite | --memory] [--domains counter,room-2]
//                  [--address 127.0.0.1] [--run-for SECONDS] [--web FOLDER]
//                  [--trusted-proxy ADDRESS_OR_CIDR]... [--origin ORIGIN]... [--forget-after SECONDS]
//                  [--postgres CONNINFO] [--log human|json]
//                  [--health] [--metrics [--metrics-token TOKEN]]
//                  [--tls-cert FILE --tls-key FILE] [--cards DOMAIN]
//                  [--inspect-token TOKEN] [--tail EVENTS]
//
// Safe for the internet by default: krmx::net::internet_facing's limits (users that do not come back are
// forgotten, connections, link attempts and new usernames are budgeted per address, small frames at a human
// rate). --trusted-proxy: read the client's address from X-Forwarded-For when the connection comes from
// there (a load balancer). --origin: the web pages that may open sockets (default: the page --web serves,
// or any page without --web).
//
// --postgres CONNINFO: the events live in PostgreSQL instead (a libpq connection string or URL, e.g.
// postgresql://krmx@db/krmx; built only where krmx::postgres is). --log json: the server's notable events
// (started, refused sockets, floods, failed commits, ...) as JSON lines on stderr; human lines by default.
//
// --health: /healthz and /readyz on the same port (for a load balancer or an orchestrator). --metrics:
// /metrics in the Prometheus text format (krmx::net::Metrics; only when built with prometheus-cpp),
// with --metrics-token (or the environment's KRMX_METRICS_TOKEN) only for scrapes that send
// `Authorization: Bearer TOKEN`.
//
// --web FOLDER: also answers plain HTTP GETs on the same port with the files of FOLDER (the web page of
// examples/web, built by its build.mjs), so a browser opens http://127.0.0.1:PORT/ and plays.
//
// --tls-cert FILE --tls-key FILE: https and wss on the port (PEM; the certificate file may hold the chain).
// SIGHUP reads both files again (a renewed certificate) without a restart: new connections get it, open
// ones keep theirs; unusable files are logged and the old certificate stays. Built with TLS only where CMake
// found OpenSSL (target krmx::tls, KRMX_COUNTER_SERVER_TLS); elsewhere these flags are refused.
//
// --cards DOMAIN: also a table of the card game with hidden hands (examples/cards/cards.hpp, a projection
// domain: each player sees only its own hand), stored like the counters; the server deals a shuffled deck as
// soon as two players sat down. The web page plays it at /cards.html.
//
// --inspect-token TOKEN (or the environment's KRMX_INSPECT_TOKEN): the inspector at /inspect?token=TOKEN
// (krmx::net::Inspector): every domain's event log, live, and its state at any position. Off without a token.
// --tail EVENTS: how many of the newest events each domain keeps in memory (64 Ki by default; older ones are
// read back from the store). On SQLite, the domains' states are also snapshot into the same file, so that a
// restart replays only the events after the newest snapshot.
//
// Prints where it listens; Ctrl-C (SIGINT) or SIGTERM stops it gracefully: every user leaves, queued
// frames are flushed, the sockets close, the store is closed. Each domain restores itself from the store
// when it is made, and stores its events with pipelined commits (a writer thread, one batch in flight).
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/signal_set.hpp>

#include <krmx/krmx.hpp>
#include <krmx/net/inspector.hpp>
#include <krmx/net/internet_facing.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/store/sqlite_checkpoint_store.hpp>
#include <krmx/store/sqlite_event_store.hpp>
#if defined(KRMX_COUNTER_SERVER_POSTGRES)
#include <krmx/store/postgres_event_store.hpp>
#endif
#if defined(KRMX_EXAMPLE_METRICS)
#include <krmx/net/metrics.hpp>
#endif
#if KRMX_COUNTER_SERVER_TLS
#include <krmx/net/tls.hpp>
#endif

#include "cards/cards.hpp"
#include "claimable_counter/counter.hpp"

namespace {

struct Arguments {
    std::uint16_t port = 8082;
    std::string address = "127.0.0.1";
    std::optional<std::string> store = "counter.sqlite";
    std::vector<std::string> domains = {"counter"};
    std::optional<double> run_for;
    std::string web;
    std::string cards;  // the card table's domain, if any
    std::vector<std::string> trusted_proxies;
    std::vector<std::string> origins;
    std::optional<double> forget_after;
    std::optional<std::string> postgres;
    std::string log = "human";
    bool health = false;
    bool metrics = false;
    std::string metrics_token;
    std::string tls_cert;
    std::string tls_key;
    std::string inspect_token;
    std::optional<std::size_t> tail;
};

Arguments parse(int argc, char** argv) {
    Arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--port") {
            a.port = static_cast<std::uint16_t>(std::stoi(value()));
        } else if (arg == "--address") {
            a.address = value();
        } else if (arg == "--store") {
            a.store = value();
        } else if (arg == "--memory") {
            a.store.reset();
        } else if (arg == "--domains") {
            a.domains.clear();
            std::stringstream list{value()};
            for (std::string d; std::getline(list, d, ',');) {
                if (!d.empty()) a.domains.push_back(d);
            }
        } else if (arg == "--web") {
            a.web = value();
        } else if (arg == "--cards") {
            a.cards = value();
        } else if (arg == "--run-for") {
            a.run_for = std::stod(value());
        } else if (arg == "--trusted-proxy") {
            a.trusted_proxies.push_back(value());
        } else if (arg == "--origin") {
            a.origins.push_back(value());
        } else if (arg == "--forget-after") {
            a.forget_after = std::stod(value());
        } else if (arg == "--postgres") {
#if defined(KRMX_COUNTER_SERVER_POSTGRES)
            a.postgres = value();
#else
            throw std::invalid_argument("--postgres: this counter_server was built without PostgreSQL (libpq)");
#endif
        } else if (arg == "--log") {
            a.log = value();
            if (a.log != "human" && a.log != "json") throw std::invalid_argument("--log is human or json");
        } else if (arg == "--health") {
            a.health = true;
        } else if (arg == "--metrics") {
            a.metrics = true;
        } else if (arg == "--metrics-token") {
            a.metrics_token = value();
        } else if (arg == "--tls-cert") {
            a.tls_cert = value();
        } else if (arg == "--tls-key") {
            a.tls_key = value();
        } else if (arg == "--inspect-token") {
            a.inspect_token = value();
        } else if (arg == "--tail") {
            a.tail = static_cast<std::size_t>(std::stoull(value()));
        } else {
            throw std::invalid_argument("unknown argument " + arg);
        }
    }
    // A token on the command line shows in `ps`: a service manager passes it in the environment instead.
    if (const char* token = std::getenv("KRMX_METRICS_TOKEN"); a.metrics_token.empty() && token) a.metrics_token = token;
    if (const char* token = std::getenv("KRMX_INSPECT_TOKEN"); a.inspect_token.empty() && token) a.inspect_token = token;
    if (a.tls_cert.empty() != a.tls_key.empty()) throw std::invalid_argument("--tls-cert and --tls-key go together");
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Arguments args = parse(argc, argv);
        std::unique_ptr<krmx::SqliteEventStore> sqlite;
        krmx::Durability durability;
        std::string where = "in memory";
        krmx::DurableOptions durable_options;
        if (args.tail) durable_options.memory.tail_events = *args.tail;
#if defined(KRMX_COUNTER_SERVER_POSTGRES)
        std::unique_ptr<krmx::PostgresEventStore> postgres;
        if (args.postgres) {
            postgres = std::make_unique<krmx::PostgresEventStore>(krmx::PostgresOptions{.connection = *args.postgres});
            durability = krmx::durable(*postgres, durable_options);
            where = "store PostgreSQL";
        }
#endif
        std::unique_ptr<krmx::SqliteCheckpointStore> snapshots;
        // The card game's model takes no snapshots: its domain gets a durability without them.
        krmx::Durability card_durability = durability;
        if (args.store && !durability) {
            sqlite = std::make_unique<krmx::SqliteEventStore>(*args.store);
            card_durability = krmx::durable(*sqlite, durable_options);
            snapshots = std::make_unique<krmx::SqliteCheckpointStore>(*args.store);  // the same file
            durable_options.snapshots = *snapshots;
            durability = krmx::durable(*sqlite, durable_options);
            where = "store " + *args.store;
        }
        const bool stored = static_cast<bool>(durability);

        auto options = krmx::net::internet_facing({.address = args.address,
                                                   .port = args.port,
                                                   .static_files = args.web,
                                                   .trusted_proxies = args.trusted_proxies,
                                                   .allowed_origins = args.origins});
        if (args.log == "json") options.log = krmx::json_log();
        const bool tls = !args.tls_cert.empty();
        if (tls) {
#if KRMX_COUNTER_SERVER_TLS
            options.tls = krmx::net::tls_files(args.tls_cert, args.tls_key);
#else
            throw std::invalid_argument("built without TLS (krmx::tls needs OpenSSL: apt-get install libssl-dev)");
#endif
        }
        if (args.forget_after) {
            options.session.forget_unlinked_after =
                std::chrono::duration_cast<krmx::Duration>(std::chrono::duration<double>(*args.forget_after));
        }
        options.health = args.health;
        krmx::net::WebSocketServer server{options};
#if defined(KRMX_EXAMPLE_METRICS)
        std::optional<krmx::net::Metrics> metrics;
        if (args.metrics) metrics.emplace(server, krmx::net::MetricsOptions{.token = args.metrics_token});
#else
        if (args.metrics) throw std::invalid_argument("--metrics: built without prometheus-cpp (krmx::metrics)");
#endif
        std::vector<std::unique_ptr<krmx::StreamDomain<Counter>>> domains;
        for (const auto& domain : args.domains) {
            auto& d = *domains.emplace_back(std::make_unique<krmx::StreamDomain<Counter>>(
                server, domain, counter::model_with_snapshots(), krmx::StreamDomainOptions{.durability = durability}));
            if (stored) {
                std::cout << "domain " << domain << ": " << d.statistics().restored << " events restored, counter "
                          << d.state().counter << "\n";
            }
        }
        // The card table: the server deals once two players sat. Handlers are deterministic, so the shuffle
        // happens here and the deck travels in the action (and in the store).
        std::optional<krmx::ProjectionDomain<cards::Table, cards::Seat>> table;
        std::function<void()> deal_when_seated = [&] {
            if (table->state().seats.size() >= 2 && !table->state().dealt) {
                std::vector<int> deck(52);
                std::iota(deck.begin(), deck.end(), 0);
                std::shuffle(deck.begin(), deck.end(), std::mt19937{std::random_device{}()});
                (void)table->dispatch(krmx::server_dispatcher, cards::deal(deck));
            }
            if (!table->state().dealt) server.after(std::chrono::milliseconds{100}, deal_when_seated);
        };
        if (!args.cards.empty()) {
            table.emplace(server, args.cards, cards::model(), krmx::ProjectionDomainOptions{.durability = card_durability});
            if (stored) std::cout << "cards " << args.cards << ": " << table->statistics().restored << " actions restored\n";
            deal_when_seated();
        }
        std::optional<krmx::net::Inspector> inspector;
        if (!args.inspect_token.empty()) inspector.emplace(server, krmx::net::InspectorOptions{.token = args.inspect_token});
        auto joins = server.session().on_link([](std::string_view u) { std::cout << u << " linked\n"; });
        auto leaves = server.session().on_unlink([](std::string_view u) { std::cout << u << " unlinked\n"; });

        boost::asio::signal_set signals{server.context(), SIGINT, SIGTERM};
        signals.async_wait([&server](const boost::system::error_code& ec, int) {
            if (!ec) server.stop();
        });
        // SIGHUP: read the certificate files again (after a renewal). The result arrives on the server's
        // thread, where this handler runs, so it is not waited for here: reload_tls() logs either way.
        boost::asio::signal_set hangups{server.context()};  // SIGHUP keeps its usual meaning without TLS
        std::function<void()> on_hangup = [&] {
            hangups.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec) return;
                (void)server.reload_tls();
                on_hangup();
            });
        };
        if (tls) {
            hangups.add(SIGHUP);
            on_hangup();
        }
        if (args.run_for) {
            server.after(
                std::chrono::duration_cast<krmx::Duration>(std::chrono::duration<double>(*args.run_for)),
                [&server] { server.stop(); });
        }
        std::cout << "krmx counter server listening on " << (tls ? "wss://" : "ws://") << args.address << ":"
                  << server.port() << " (" << where << ")" << std::endl;
        if (args.metrics) {
            std::cout << "metrics on " << (tls ? "https://" : "http://") << args.address << ":" << server.port()
                      << "/metrics" << (args.metrics_token.empty() ? "" : " (bearer token required)") << std::endl;
        }
        if (inspector) {
            std::cout << "inspector on " << (tls ? "https://" : "http://") << args.address << ":" << server.port()
                      << "/inspect?token=..." << std::endl;
        }
        if (!args.web.empty()) {
            std::cout << "web page on " << (tls ? "https://" : "http://") << args.address << ":" << server.port() << "/" << std::endl;
        }
        server.run();
        signals.cancel();
        hangups.cancel();
        for (const auto& d : domains) {
            std::cout << "domain " << d->name() << ": " << d->size() << " events, counter "
                      << d->state().counter << "\n";
        }
        std::cout << "stopped" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "counter_server: " << e.what() << "\n";
        return 1;
    }
}

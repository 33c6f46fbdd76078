// The claimable counter as a real networked Krmx server: @krmx/client (browsers, Node) and
// krmx::net::WebSocketClient (examples/counter_bot) connect to it. Durable on SQLite by default.
//
//   counter_server [--port 8082] [--store counter.sqlite | --memory] [--domains counter,room-2]
//                  [--address 127.0.0.1] [--run-for SECONDS] [--web FOLDER]
//
// --web FOLDER: also answers plain HTTP GETs on the same port with the files of FOLDER (the web page of
// examples/web, built by its build.mjs), so a browser opens http://127.0.0.1:PORT/ and plays.
//
// Prints where it listens; Ctrl-C (SIGINT) or SIGTERM stops it gracefully: every user leaves, queued
// frames are flushed, the sockets close, the store is closed. Each domain restores itself from the store
// when it is made, and stores its events with pipelined commits (a writer thread, one batch in flight).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/signal_set.hpp>

#include <krmx/krmx.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/store/sqlite_event_store.hpp>

#include "claimable_counter/counter.hpp"

namespace {

struct Arguments {
    std::uint16_t port = 8082;
    std::string address = "127.0.0.1";
    std::optional<std::string> store = "counter.sqlite";
    std::vector<std::string> domains = {"counter"};
    std::optional<double> run_for;
    std::string web;
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
        } else if (arg == "--run-for") {
            a.run_for = std::stod(value());
        } else {
            throw std::invalid_argument("unknown argument " + arg);
        }
    }
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Arguments args = parse(argc, argv);
        std::unique_ptr<krmx::SqliteEventStore> store;
        if (args.store) store = std::make_unique<krmx::SqliteEventStore>(*args.store);

        krmx::net::WebSocketServer server{
            {.address = args.address, .port = args.port, .static_files = args.web}};
        const krmx::Durability durability = store ? krmx::durable(*store) : krmx::Durability{};
        std::vector<std::unique_ptr<krmx::StreamDomain<Counter>>> domains;
        for (const auto& domain : args.domains) {
            auto& d = *domains.emplace_back(std::make_unique<krmx::StreamDomain<Counter>>(
                server, domain, counter::model(), krmx::StreamDomainOptions{.durability = durability}));
            if (store) {
                std::cout << "domain " << domain << ": " << d.statistics().restored << " events restored, counter "
                          << d.state().counter << "\n";
            }
        }
        auto joins = server.session().on_link([](std::string_view u) { std::cout << u << " linked\n"; });
        auto leaves = server.session().on_unlink([](std::string_view u) { std::cout << u << " unlinked\n"; });

        boost::asio::signal_set signals{server.context(), SIGINT, SIGTERM};
        signals.async_wait([&server](const boost::system::error_code& ec, int) {
            if (!ec) server.stop();
        });
        if (args.run_for) {
            server.after(
                std::chrono::duration_cast<krmx::Duration>(std::chrono::duration<double>(*args.run_for)),
                [&server] { server.stop(); });
        }
        std::cout << "krmx counter server listening on ws://" << args.address << ":" << server.port()
                  << (store ? " (store " + *args.store + ")" : std::string{" (in memory)"}) << std::endl;
        if (!args.web.empty()) {
            std::cout << "web page on http://" << args.address << ":" << server.port() << "/" << std::endl;
        }
        server.run();
        signals.cancel();
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

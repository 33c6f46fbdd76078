#pragma once
// A table for sync tests: a hub, one host, the counter domain, and players joined by name.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <krmx/sync/domain_host.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>
#include <krmx/testing/hub.hpp>

#include "claimable_counter/counter.hpp"

using namespace std::chrono_literals;

inline constexpr const char* counter_domain = "counter";

struct Table {
    explicit Table(krmx::StreamDomainOptions options = {}, krmx::StreamClientOptions client_options = {},
                   krmx::testing::HubOptions hub_options = {})
        : hub(std::move(hub_options)),
          server(hub, counter_domain, counter::model(), std::move(options)),
          client_options(client_options) {}

    /// Connects `name` with a stream client and asks to link (nothing travels until the hub runs).
    krmx::StreamClient<Counter>& join(const std::string& name, krmx::Duration latency = 10ms) {
        auto& connection = hub.connect(name, latency);
        auto& client = *clients
                            .emplace(name, std::make_unique<krmx::StreamClient<Counter>>(
                                               connection, counter_domain, counter::model(), client_options))
                            .first->second;
        connection.link();
        return client;
    }
    /// A bare connection, linked, without a stream client: for sending raw text.
    krmx::testing::ClientEndpoint& raw(const std::string& name, krmx::Duration latency = 10ms) {
        auto& connection = hub.connect(name, latency);
        connection.link();
        hub.run_until_idle();
        connection.clear_received();
        return connection;
    }
    krmx::StreamClient<Counter>& operator[](const std::string& name) { return *clients.at(name); }

    /// Every client agrees with the server and has nothing pending.
    bool converged() const {
        for (const auto& [name, c] : clients) {
            if (!(c->state() == server.state() && c->confirmed_state() == server.state() &&
                  c->pending_count() == 0 && c->confirmed_size() == server.size())) {
                return false;
            }
        }
        return true;
    }

    krmx::testing::Hub hub;
    krmx::DomainHost& host = hub.host();
    krmx::StreamDomain<Counter> server;
    krmx::StreamClientOptions client_options;
    std::map<std::string, std::unique_ptr<krmx::StreamClient<Counter>>> clients;
};

/// The messages a connection received, parsed.
inline std::vector<nlohmann::json> parsed(const krmx::testing::ClientEndpoint& connection) {
    std::vector<nlohmann::json> out;
    for (const auto& text : connection.received()) out.push_back(nlohmann::json::parse(text));
    return out;
}

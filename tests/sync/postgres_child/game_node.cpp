// One node of the "several game servers, one database" test, as its own process.
//
//   game_node server <conninfo> <schema> <domains,comma,separated> <events per domain>
//     Claims each domain (a PostgreSQL lock named "domain/<id>"; refuses with "refused <id>: ..." and exit
//     code 3 when another server holds it), restores the domain's stream from PostgreSQL into a durable
//     StreamDomain of the claimable counter, then dispatches increments until the stream holds the given
//     number of events. Prints "restored <id> <n>", "ready", "progress <id> <n>" every 10 events, "done";
//     then holds its domains until a line "stop" (or the end of stdin).
//   game_node reader <conninfo> <schema> <events>
//     A read model over every stream: subscribes from the start, checks that positions arrive dense and in
//     order and that each stream's revisions do too, prints "reached <events> violations <v>" once it has
//     seen that many events.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "claimable_counter/counter.hpp"
#include "krmx/models/postgres_lock_provider.hpp"
#include "krmx/store/postgres_event_store.hpp"
#include "krmx/sync/durable.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/stream_domain.hpp"
#include "krmx/testing/hub.hpp"

#include "test_child.hpp"

namespace child_krmx_sync_postgres_game_node {

namespace {

void say(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream in{text};
    for (std::string part; std::getline(in, part, ',');)
        if (!part.empty()) parts.push_back(part);
    return parts;
}

int serve(const krmx::PostgresOptions& database, const std::vector<std::string>& domains,
          std::size_t target) {
    krmx::PostgresEventStore store{database, {.durability = krmx::PostgresDurability::group_commit}};
    krmx::PostgresLockProvider locks{database};
    std::vector<krmx::Lock> claims;
    for (const auto& domain : domains) {
        auto claim = locks.try_acquire("domain/" + domain);
        if (!claim) {
            say("refused " + domain + ": another game server is serving this domain");
            return 3;
        }
        claims.push_back(std::move(*claim));
    }
    krmx::testing::Hub hub;
    // Synchronous commits: this server's own loop is the one below, which answers each dispatch at once.
    const auto durability = krmx::durable(store, {.commits = krmx::Commits::synchronous});
    std::vector<std::unique_ptr<krmx::StreamDomain<Counter>>> servers;
    for (const auto& domain : domains) {
        servers.push_back(std::make_unique<krmx::StreamDomain<Counter>>(hub, domain, counter::model(),
                                                                          krmx::StreamDomainOptions{.durability = durability}));
        say("restored " + domain + " " + std::to_string(servers.back()->statistics().restored));
    }
    say("ready");
    bool more = true;
    while (more) {
        more = false;
        for (std::size_t d = 0; d < domains.size(); ++d) {
            auto& server = *servers[d];
            if (server.size() >= target) continue;
            more = true;
            const auto result = server.dispatch("<server>", counter::increment(1));
            if (!result) {
                say("refused-append " + domains[d] + ": " + std::string{result.reason()});
                return 4;
            }
            if (server.size() % 10 == 0) say("progress " + domains[d] + " " + std::to_string(server.size()));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    say("done");
    // Keep serving (and holding the domains' locks) until told to stop: a server that finished early must
    // still refuse an intruder.
    for (std::string line; std::getline(std::cin, line) && line != "stop";) {
    }
    return 0;
}

int read(const krmx::PostgresOptions& database, std::uint64_t target) {
    krmx::PostgresEventStore store{database};
    std::atomic<std::uint64_t> seen{0};
    std::atomic<int> violations{0};
    std::map<std::string, krmx::Revision> next_revision;
    krmx::Position last = 0;
    auto subscription = store.subscribe(krmx::SubscribeFrom::start(), {.on_event =
                                                                           [&](const krmx::RecordedEvent& e) {
                                                                               if (e.position != last + 1)
                                                                                   ++violations;
                                                                               last = e.position;
                                                                               auto& revision =
                                                                                   next_revision[e.stream];
                                                                               if (e.revision != revision)
                                                                                   ++violations;
                                                                               revision = e.revision + 1;
                                                                               ++seen;
                                                                           },
                                                                       .on_error =
                                                                           [&](std::exception_ptr) {
                                                                               ++violations;
                                                                           }});
    while (seen < target) std::this_thread::sleep_for(std::chrono::milliseconds{5});
    subscription.cancel();
    say("reached " + std::to_string(seen.load()) + " violations " + std::to_string(violations.load()));
    return 0;
}

}  // namespace

int run(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "server" && argc == 6) {
            return serve({.connection = argv[2], .schema = argv[3]}, split(argv[4]),
                         static_cast<std::size_t>(std::atoll(argv[5])));
        }
        if (mode == "reader" && argc == 5) {
            return read({.connection = argv[2], .schema = argv[3]},
                        static_cast<std::uint64_t>(std::atoll(argv[4])));
        }
        std::fprintf(
            stderr,
            "usage: %s server <conninfo> <schema> <domains> <events> | reader <conninfo> <schema> <events>\n",
            argv[0]);
        return 2;
    } catch (const std::exception& e) {
        say(std::string{"error: "} + e.what());
        return 1;
    }
}

}  // namespace child_krmx_sync_postgres_game_node

KRMX_TEST_CHILD(krmx_sync_postgres_game_node, child_krmx_sync_postgres_game_node::run);

// Several game servers, one database: two server processes host different domains of one PostgreSQL
// schema, a third process runs a read model over all of them; one server is killed with SIGKILL and a
// replacement restores its domains from PostgreSQL and carries on. A server that tries to serve a domain
// someone else is serving is refused with a clear error, and a server that writes behind the lock's back
// is refused by the expected revision: the stream never forks.

#include <chrono>
#include <string>
#include <vector>

#include <krmx/models/postgres_lock_provider.hpp>
#include <krmx/store/postgres_event_store.hpp>
#include <krmx/sync/durable.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "postgres_server.hpp"
#include "sync_support.hpp"

using krmx::testing::ChildProcess;
using krmx::testing::shared_postgres;

namespace {

std::vector<std::string> node_args(std::vector<std::string> args, const std::string& schema) {
    args.insert(args.begin() + 1, schema);
    args.insert(args.begin() + 1, shared_postgres().conninfo());
    return args;
}

}  // namespace

TEST_CASE("game servers in separate processes share one PostgreSQL database and survive a SIGKILL",
          "[durable][postgres][processes]") {
    const std::string schema = krmx::testing::unique_postgres_schema("servers");
    constexpr int per_domain = 120;
    const auto wait = std::chrono::seconds{120};

    ChildProcess reader{KRMX_GAME_NODE, node_args({"reader", std::to_string(4 * per_domain)}, schema)};
    ChildProcess first{KRMX_GAME_NODE, node_args({"server", "a1,a2", std::to_string(per_domain)}, schema)};
    ChildProcess second{KRMX_GAME_NODE, node_args({"server", "b1,b2", std::to_string(per_domain)}, schema)};
    REQUIRE(first.wait_for_line("ready", wait));
    REQUIRE(second.wait_for_line("ready", wait));

    // The first server dies in the middle of its work.
    REQUIRE(first.wait_for_line("progress a1 30", wait));
    first.kill_and_wait();

    // Nobody else may take over a domain that a live server is serving: a clear error, nothing written.
    ChildProcess intruder{KRMX_GAME_NODE, node_args({"server", "b1", std::to_string(per_domain)}, schema)};
    REQUIRE(intruder.read_to_end(wait));
    CHECK(intruder.output().find("refused b1: another game server is serving this domain") !=
          std::string::npos);
    CHECK_FALSE(intruder.exited_cleanly());

    // The replacement gets the dead server's domains at once, restores them and carries on.
    ChildProcess replacement{KRMX_GAME_NODE,
                             node_args({"server", "a1,a2", std::to_string(per_domain)}, schema)};
    REQUIRE(replacement.wait_for_line("done", wait));
    REQUIRE(replacement.write("stop\n"));
    INFO(replacement.output());
    CHECK(replacement.exited_cleanly());
    const auto lines = replacement.lines();
    REQUIRE(lines.size() >= 2);
    CHECK(lines[0].starts_with("restored a1 "));
    CHECK(std::stoi(lines[0].substr(12)) >= 30);
    REQUIRE(second.wait_for_line("done", wait));
    REQUIRE(second.write("stop\n"));
    CHECK(second.exited_cleanly());

    // The read model saw every event of every domain, dense and in order, live across the kill.
    REQUIRE(reader.wait_for_line("reached " + std::to_string(4 * per_domain) + " violations 0", wait));
    CHECK(reader.exited_cleanly());

    krmx::PostgresEventStore store{{.connection = shared_postgres().conninfo(), .schema = schema}};
    CHECK(store.head_position() == 4 * per_domain);
    for (const char* domain : {"a1", "a2", "b1", "b2"}) {
        CAPTURE(domain);
        const auto events = store.read_stream(domain);
        REQUIRE(events.size() == per_domain);
        for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i].revision == i);
    }
}

TEST_CASE("a second server writing a domain behind the lock's back is refused, never forks the stream",
          "[durable][postgres]") {
    const krmx::PostgresOptions database{.connection = shared_postgres().conninfo(),
                                         .schema = krmx::testing::unique_postgres_schema("fork")};
    krmx::PostgresEventStore store_one{database};
    krmx::PostgresEventStore store_two{database};
    Table one{{.durability = krmx::durable(store_one, {.commits = krmx::Commits::synchronous})}};
    Table two{{.durability = krmx::durable(store_two, {.commits = krmx::Commits::synchronous})}};
    REQUIRE(one.server.dispatch("<server>", counter::increment(1)));
    // The second server never restored: it believes the stream is empty and expects no stream.
    const auto refused = two.server.dispatch("<server>", counter::increment(5));
    CHECK_FALSE(refused);
    CHECK(two.server.statistics().not_stored == 1);
    REQUIRE(one.server.dispatch("<server>", counter::increment(2)));
    const auto events = store_one.read_stream(counter_domain);
    REQUIRE(events.size() == 2);
    CHECK(events[0].payload == 1);
    CHECK(events[1].payload == 2);
}

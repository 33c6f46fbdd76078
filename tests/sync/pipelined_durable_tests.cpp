// Pipelined durability (krmx::durable, Commits::pipelined): events accepted while a commit is in flight go
// together in the next one; nobody hears of an event before its commit; a failed commit takes back exactly
// its batch; a restarted server restores the same stream; a killed server process loses no event that any
// client saw confirmed. The commits' completions go to a mailbox the test runs by hand.
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <krmx/store/memory_event_store.hpp>
#include <krmx/sync/durable.hpp>
#if defined(KRMX_TEST_SQLITE)
#include <krmx/store/sqlite_event_store.hpp>
#endif
#if defined(KRMX_PIPELINED_SERVER)
#include "child_process.hpp"
#endif

#include "catch.hpp"
#include "stores.hpp"
#include "pipeline_support.hpp"
#include "sync_support.hpp"
#include "temp_dir.hpp"

namespace {

using krmx::testing::InstrumentedStore;
using krmx::testing::Mailbox;

using krmx::testing::MemoryStore;
#if defined(KRMX_TEST_SQLITE)
using krmx::testing::SqliteStore;
#define KRMX_PIPELINED_STORES MemoryStore, SqliteStore
#else
#define KRMX_PIPELINED_STORES MemoryStore
#endif

// Runs the hub and the posted commit completions until `finished()` (false after 20 s). After every
// delivery, checks that no client holds more confirmed events than the store: `early` counts breaches.
template <class Store, class Finished>
bool pump(Table& t, Mailbox& mail, const Store& store, std::size_t& early, Finished&& finished) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
    while (!finished()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        bool progressed = mail.run_posted() > 0;
        if (t.hub.step()) {
            progressed = true;
            const auto revision = store.stream_revision(counter_domain);
            const std::size_t stored = revision ? *revision + 1 : 0;
            for (const auto& [name, client] : t.clients) {
                if (client->confirmed_size() > stored) ++early;
            }
        }
        if (!progressed) (void)mail.wait_and_run(std::chrono::milliseconds{5});
    }
    return true;
}

template <class Store>
bool settled(Table& t, Mailbox& mail, const Store& store, std::size_t& early) {
    return pump(t, mail, store, early, [&] { return t.server.uncommitted() == 0 && t.hub.idle(); });
}

// The invalidate reasons a connection received, in order.
std::vector<std::string> invalidate_reasons(const krmx::testing::ClientEndpoint& connection) {
    std::vector<std::string> out;
    for (const auto& m : parsed(connection)) {
        if (m["type"] == "stream/invalidate") out.push_back(m["payload"]["reason"].get<std::string>());
    }
    return out;
}

// The events (as JSON) a connection received in `stream/append` broadcasts.
std::vector<nlohmann::json> appended(const krmx::testing::ClientEndpoint& connection) {
    std::vector<nlohmann::json> out;
    for (const auto& m : parsed(connection)) {
        if (m["type"] == "stream/append") out.push_back(m["payload"]["event"]);
    }
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("events accepted during a commit go together in the next append, heard of after it",
                   "[durable][pipelined]", KRMX_PIPELINED_STORES) {
    TestType stores;
    auto& base = stores.open();
    InstrumentedStore gated{base};
    Mailbox mail;
    Table t{{.durability = krmx::durable(gated, {.post = mail.poster()})}};
    auto& alice = t.join("alice", 5ms);
    auto& bob = t.join("bob", 7ms);
    t.hub.run_until_idle();

    gated.close_gate();
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    REQUIRE(gated.wait_for_held(std::chrono::seconds{10}));  // a batch of one, in flight
    for (int i = 0; i < 4; ++i) REQUIRE(alice.dispatch(counter::increment(2)));
    for (int i = 0; i < 5; ++i) REQUIRE(bob.dispatch(counter::increment(3)));
    t.hub.run_until_idle();

    // Applied (validated against each other), but confirmed to nobody, the senders included.
    CHECK(t.server.size() == 10);
    CHECK(t.server.state().counter == 1 + 8 + 15);
    CHECK(t.server.confirmed_size() == 0);
    CHECK(t.server.uncommitted() == 10);
    CHECK(t.server.committing());
    CHECK(alice.confirmed_size() == 0);
    CHECK(bob.confirmed_size() == 0);
    CHECK(appended(t.hub.client("alice")).empty());
    CHECK(appended(t.hub.client("bob")).empty());
    CHECK(base.read_stream(counter_domain).empty());

    gated.open_gate();
    std::size_t early = 0;
    REQUIRE(settled(t, mail, gated, early));
    CHECK(early == 0);
    CHECK(gated.append_sizes() == std::vector<std::size_t>{1, 9});
    CHECK(t.server.statistics().commits == 2);
    CHECK(t.server.statistics().accepted == 10);
    CHECK(t.converged());

    const auto records = base.read_stream(counter_domain);
    REQUIRE(records.size() == 10);
    for (std::size_t i = 0; i < records.size(); ++i) {
        CHECK(records[i].revision == i);
        CHECK(records[i].metadata["text"] == t.server.event_text(i));
        CHECK(records[i].dispatcher == t.server.stream().log()[i].dispatcher());
    }
    // Positions in the broadcasts are dense and in order.
    std::vector<std::size_t> positions;
    for (const auto& m : parsed(t.hub.client("bob")))
        if (m["type"] == "stream/append") positions.push_back(m["payload"]["position"].get<std::size_t>());
    REQUIRE(positions.size() == 10);
    for (std::size_t i = 0; i < positions.size(); ++i) CHECK(positions[i] == i);
}

TEMPLATE_TEST_CASE("a failed commit takes back exactly its batch, restores the state and tells the senders",
                   "[durable][pipelined]", KRMX_PIPELINED_STORES) {
    TestType stores;
    auto& base = stores.open();
    InstrumentedStore gated{base};
    Mailbox mail;
    Table t{{.durability = krmx::durable(gated, {.post = mail.poster()})}};
    auto& alice = t.join("alice", 5ms);
    auto& bob = t.join("bob", 7ms);
    auto& carol = t.join("carol", 9ms);
    t.hub.run_until_idle();
    std::size_t early = 0;

    gated.close_gate();
    REQUIRE(alice.dispatch(counter::increment(1)));  // batch A, held
    t.hub.run_until_idle();
    REQUIRE(gated.wait_for_held(std::chrono::seconds{10}));
    REQUIRE(alice.dispatch(counter::increment(2)));  // batch B, waiting
    REQUIRE(bob.dispatch(counter::increment(3)));
    t.hub.run_until_idle();
    gated.let_through(1);  // A commits, B goes in flight and is held
    REQUIRE(
        pump(t, mail, gated, early, [&] { return t.server.confirmed_size() == 1 && t.server.committing(); }));
    REQUIRE(gated.wait_for_held(std::chrono::seconds{10}));
    REQUIRE(carol.dispatch(counter::claim()));  // waits behind B
    t.hub.run_until_idle();
    REQUIRE(bob.dispatch(counter::increment(5)));  // refused at once: carol's (unconfirmed) claim holds
    t.hub.run_until_idle();
    CHECK(t.server.state() == Counter{6, "carol"});
    CHECK(t.server.uncommitted() == 3);

    t.hub.client("alice").clear_received();
    t.hub.client("bob").clear_received();
    t.hub.client("carol").clear_received();
    gated.fail_next("disk full");
    gated.open_gate();
    REQUIRE(settled(t, mail, gated, early));
    CHECK(early == 0);

    // B (alice's 2, bob's 3) is gone; carol's claim was judged again on the restored state and stored.
    CHECK(gated.append_sizes() == std::vector<std::size_t>{1, 2, 1});
    CHECK(t.server.state() == Counter{1, "carol"});
    CHECK(t.server.size() == 2);
    const auto records = base.read_stream(counter_domain);
    REQUIRE(records.size() == 2);
    CHECK(records[0].payload == nlohmann::json(1));
    CHECK(records[1].type == "claim");
    CHECK(records[1].dispatcher == "carol");
    CHECK(records[1].revision == 1);
    const auto& stats = t.server.statistics();
    CHECK(stats.failed_commits == 1);
    CHECK(stats.not_stored == 2);
    CHECK(stats.redispatched == 1);
    CHECK(stats.rejected == 1);
    CHECK(stats.accepted == 2);

    // Each sender of B hears "event not stored", nobody hears of B's events; carol's claim is confirmed
    // to everyone at position 1.
    CHECK(invalidate_reasons(t.hub.client("alice")) ==
          std::vector<std::string>{"event not stored: disk full"});
    CHECK(invalidate_reasons(t.hub.client("bob")) == std::vector<std::string>{"event not stored: disk full"});
    CHECK(invalidate_reasons(t.hub.client("carol")).empty());
    for (const char* name : {"alice", "bob", "carol"}) {
        const auto events = appended(t.hub.client(name));
        REQUIRE(events.size() == 1);
        CHECK(events[0]["type"] == "claim");
        const auto last = parsed(t.hub.client(name));
        CHECK(std::any_of(last.begin(), last.end(), [](const nlohmann::json& m) {
            return m["type"] == "stream/append" && m["payload"]["position"] == 1;
        }));
    }
    CHECK(t.converged());
    CHECK(alice.state() == Counter{1, "carol"});

    // The stream goes on from there.
    REQUIRE(carol.dispatch(counter::increment(4)));
    REQUIRE(settled(t, mail, gated, early));
    CHECK(base.read_stream(counter_domain).size() == 3);
    CHECK(t.converged());
}

TEMPLATE_TEST_CASE("histories leave out events that wait for their commit", "[durable][pipelined]",
                   KRMX_PIPELINED_STORES) {
    TestType stores;
    InstrumentedStore gated{stores.open()};
    Mailbox mail;
    Table t{{.durability = krmx::durable(gated, {.post = mail.poster()})}};
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    REQUIRE(alice.dispatch(counter::increment(1)));
    std::size_t early = 0;
    REQUIRE(settled(t, mail, gated, early));

    gated.close_gate();
    REQUIRE(alice.dispatch(counter::increment(2)));
    t.hub.run_until_idle();
    REQUIRE(gated.wait_for_held(std::chrono::seconds{10}));
    auto& dave = t.join("dave");  // links while alice's 2 is in flight
    t.hub.run_until_idle();
    CHECK(dave.confirmed_size() == 1);
    CHECK(dave.state() == Counter{1, std::nullopt});
    // A resync asks for everything after what dave has: nothing confirmed yet.
    auto& raw = t.raw("eve");
    raw.send(krmx::detail::resync_message(counter_domain, 1));
    t.hub.run_until_idle();
    const auto pages = parsed(raw);
    REQUIRE(pages.size() == 1);
    CHECK(pages[0]["type"] == "stream/history");
    CHECK(pages[0]["payload"]["events"].size() == 1);  // the one event eve has, to check it follows

    gated.open_gate();
    REQUIRE(settled(t, mail, gated, early));
    CHECK(early == 0);
    CHECK(dave.confirmed_size() == 2);
    CHECK(t.converged());
}

TEMPLATE_TEST_CASE("a restarted server restores the pipelined stream exactly", "[durable][pipelined]",
                   KRMX_PIPELINED_STORES) {
    TestType stores;
    Counter before;
    std::vector<std::string> texts_before;
    std::mt19937 random{Catch::rngSeed()};
    {
        Mailbox mail;
        Table t{{.durability = krmx::durable(stores.open(), {.post = mail.poster()})}};
        std::vector<krmx::StreamClient<Counter>*> players{&t.join("alice", 3ms), &t.join("bob", 11ms),
                                                          &t.join("carol", 17ms)};
        t.hub.run_until_idle();
        std::size_t early = 0;
        for (int round = 0; round < 60; ++round) {
            auto& player = *players[random() % players.size()];
            switch (random() % 5) {
                case 0:
                    (void)player.dispatch(counter::claim());
                    break;
                case 1:
                    (void)player.dispatch(counter::release());
                    break;
                default:
                    (void)player.dispatch(counter::increment(static_cast<int>(random() % 9)));
            }
            for (auto steps = random() % 4; steps > 0 && t.hub.step(); --steps) (void)mail.run_posted();
        }
        // Whatever the rounds did, three events that reach the server before any commit completes make
        // at least one batch of two (the first may go alone).
        for (auto* player : players) (void)player->dispatch(counter::increment(1));
        t.hub.run_until_idle();
        REQUIRE(settled(t, mail, stores.open(), early));
        CHECK(early == 0);
        CHECK(t.converged());
        before = t.server.state();
        for (std::size_t i = 0; i < t.server.size(); ++i) texts_before.emplace_back(t.server.event_text(i));
        CHECK(t.server.statistics().commits < t.server.size());  // some batches held more than one
    }
    stores.reopen();
    Mailbox mail;
    Table t{{.durability = krmx::durable(stores.open(), {.post = mail.poster()})}};
    CHECK(t.server.statistics().restored == texts_before.size());
    CHECK(t.server.state() == before);
    std::vector<std::string> texts_after;
    for (std::size_t i = 0; i < t.server.size(); ++i) texts_after.emplace_back(t.server.event_text(i));
    CHECK(texts_after == texts_before);
    auto& alice = t.join("alice");
    t.hub.run_until_idle();
    CHECK(alice.state() == before);
    // And it goes on: the next commit expects exactly the restored revision.
    REQUIRE(t.server.dispatch(before.claim.value_or("<server>"),
                              counter::increment(1)));  // as the claimer, if any
    std::size_t early = 0;
    REQUIRE(settled(t, mail, stores.open(), early));
    CHECK(stores.open().read_stream(counter_domain).size() == texts_before.size() + 1);
    CHECK(t.converged());
}

TEST_CASE("a journal may complete a commit at once or throw", "[durable][pipelined]") {
    std::vector<std::size_t> sizes;
    bool fail = false;
    krmx::testing::CallbackJournal journal{[&](std::span<const krmx::CommitEvent> batch, krmx::CommitDone done) {
        sizes.push_back(batch.size());
        if (fail) throw std::runtime_error("no disk");
        done(std::nullopt);
        done(std::string{"late and twice: ignored"});
    }};
    Table t{{.durability = journal.durability()}};
    auto& alice = t.join("alice");
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    for (int i = 0; i < 3; ++i) REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(sizes == std::vector<std::size_t>{1, 1, 1});  // nothing in flight: each commits alone
    CHECK(t.server.confirmed_size() == 3);
    CHECK(t.converged());

    fail = true;
    t.hub.client("bob").clear_received();
    REQUIRE(bob.dispatch(counter::increment(5)));
    t.hub.run_until_idle();
    CHECK(invalidate_reasons(t.hub.client("bob")) == std::vector<std::string>{"event not stored: no disk"});
    CHECK(t.server.state() == Counter{3, std::nullopt});
    CHECK(t.server.size() == 3);
    CHECK(t.converged());

    // Server code's events: a commit that fails in the call refuses the event at once, and counts it.
    const auto refused = t.server.dispatch("<server>", counter::increment(7));
    CHECK(refused.outcome() == krmx::Outcome::failed);
    CHECK(refused.reason() == "event not stored: no disk");
    CHECK(t.server.size() == 3);
    CHECK(t.server.statistics().not_stored == 2);
}

TEST_CASE("a completion after the domain is gone, or a second one, does nothing", "[durable][pipelined]") {
    std::vector<krmx::CommitDone> held;
    krmx::testing::CallbackJournal journal{
        [&](std::span<const krmx::CommitEvent>, krmx::CommitDone done) { held.push_back(std::move(done)); }};
    {
        Table t{{.durability = journal.durability()}};
        REQUIRE(t.server.dispatch("<server>", counter::increment(1)));
        REQUIRE(t.server.dispatch("<server>", counter::increment(2)));
        REQUIRE(held.size() == 1);
        held[0](std::nullopt);
        held[0](std::string{"again"});  // ignored: the batch is done
        REQUIRE(held.size() == 2);      // the second event went out right after
        CHECK(t.server.confirmed_size() == 1);
        CHECK(t.server.statistics().failed_commits == 0);
    }
    held[1](std::nullopt);  // the domain is gone: nothing happens (ASan would see a use after free)
    held[1](std::string{"failed"});
}

#if defined(KRMX_PIPELINED_SERVER) && defined(KRMX_TEST_SQLITE)
TEST_CASE("a server process killed under load lost no event any client saw confirmed",
          "[durable][pipelined][crash]") {
    for (unsigned round = 0; round < 3; ++round) {
        krmx::testing::TempDir dir;
        const auto file = (dir.path() / "game.sqlite").string();
        krmx::testing::ChildProcess child{KRMX_PIPELINED_SERVER,
                                          {file, std::to_string(Catch::rngSeed() + round)}};
        REQUIRE(child.wait_for_line("ready", std::chrono::seconds{20}));
        // Let it run until a few thousand events were confirmed (or a time limit), then kill it.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
        const auto target = 2000 + 1000 * round;
        while (std::chrono::steady_clock::now() < deadline && child.lines().size() < target) {
            child.read_for(std::chrono::milliseconds{20});
        }
        (void)child.kill_and_wait();
        // Every line after "ready": "<position> <event text>", one per confirmation a client received.
        const auto lines = child.lines();
        REQUIRE(lines.size() > 100);
        krmx::SqliteEventStore store{file};
        const auto records = store.read_stream(counter_domain);
        std::size_t checked = 0;
        for (std::size_t i = 1; i < lines.size(); ++i) {
            const auto space = lines[i].find(' ');
            REQUIRE(space != std::string::npos);
            const auto position = std::stoull(lines[i].substr(0, space));
            REQUIRE(position < records.size());
            // The child reports the event re-serialized: compare as JSON.
            CHECK(nlohmann::json::parse(records[position].metadata["text"].get<std::string>()) ==
                  nlohmann::json::parse(lines[i].substr(space + 1)));
            ++checked;
        }
        INFO("confirmed " << checked << ", stored " << records.size());
        CHECK(checked > 0);
        // What is stored is one dense stream that a server restores.
        for (std::size_t r = 0; r < records.size(); ++r) REQUIRE(records[r].revision == r);
        Table t{{.durability = krmx::durable(store)}};
        CHECK(t.server.statistics().restored == records.size());
    }
}

TEST_CASE("a server process killed while it writes snapshots restarts from a valid one", "[durable][snapshot][crash]") {
    auto model = counter::model();
    model.snapshots(1);
    for (unsigned round = 0; round < 3; ++round) {
        krmx::testing::TempDir dir;
        const auto file = (dir.path() / "game.sqlite").string();
        krmx::testing::ChildProcess child{KRMX_PIPELINED_SERVER,
                                          {file, std::to_string(Catch::rngSeed() + round), "snapshots"}};
        REQUIRE(child.wait_for_line("ready", std::chrono::seconds{20}));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
        while (std::chrono::steady_clock::now() < deadline && child.lines().size() < 1500 + 700 * round) {
            child.read_for(std::chrono::milliseconds{20});
        }
        (void)child.kill_and_wait();
        krmx::SqliteEventStore store{file};
        krmx::SqliteCheckpointStore checkpoints{file};
        const auto synchronous = krmx::Commits::synchronous;
        Counter expected;
        std::size_t size = 0;
        {
            krmx::testing::Hub hub;
            krmx::StreamDomain replayed{hub, counter_domain, counter::model(),
                                        {.durability = krmx::durable(store, {.commits = synchronous})}};
            expected = replayed.state();
            size = replayed.size();
        }
        INFO("round " << round << ": " << size << " events stored");
        REQUIRE(size > 100);
        // The restart: from the newest snapshot (none damaged: each save replaced the older slot in one
        // transaction), to exactly the state a full replay gives.
        krmx::testing::Hub hub;
        krmx::StreamDomain restarted{hub, counter_domain, model,
                                     {.durability = krmx::durable(store, {.commits = synchronous, .snapshots = checkpoints})}};
        CHECK(restarted.snapshot_statistics().damaged == 0);
        CHECK(restarted.snapshot_statistics().restored == 1);
        CHECK(restarted.statistics().restored < 500);  // the events after the newest snapshot, not all
        CHECK(restarted.size() == size);
        CHECK(restarted.state() == expected);
    }
}
#endif

TEST_CASE("after a failed commit the history's memory budget counts the events judged again once",
          "[durable][pipelined]") {
    // Each event below takes 37 bytes of the budget (its 32-byte text and the 5-byte dispatcher). A durable
    // domain never fills up (it lets old events go), but it reports the bytes it holds.
    std::vector<krmx::CommitDone> held;
    krmx::testing::CallbackJournal journal{
        [&](std::span<const krmx::CommitEvent>, krmx::CommitDone done) { held.push_back(std::move(done)); }};
    Table t{{.max_history_bytes = 6 * 38, .durability = journal.durability()}};
    const auto one = [&] { return t.server.dispatch_text("alice", R"({"type":"increment","payload":1})"); };
    REQUIRE(one());  // in flight alone
    for (int i = 0; i < 4; ++i) REQUIRE(one());  // waiting behind it
    REQUIRE(held.size() == 1);
    held[0](std::string{"disk full"});  // the first is lost; the four are judged again and wait anew
    CHECK(t.server.size() == 4);
    CHECK(t.server.statistics().redispatched == 4);
    CHECK(t.server.statistics().too_large == 0);
    REQUIRE(held.size() == 2);
    held[1](std::nullopt);
    CHECK(t.server.confirmed_size() == 4);
    CHECK(one());
    CHECK(one());
    const auto reports = t.host.reports();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].history_bytes == 6 * 37);
    CHECK(one());  // past max_history_bytes: accepted all the same
}

// Durable domains: a StreamDomain whose accepted events go to an EventStore before anyone is told, and a
// restarted server that restores exactly the confirmed stream from it, with pipelined commits (on the
// durability's writer thread, completed through the hub's loop) and synchronous ones.
#include <memory>
#include <stdexcept>
#include <string>

#include <krmx/sync/durable.hpp>

#include "catch.hpp"
#include "stores.hpp"
#include "sync_support.hpp"

namespace {

krmx::StreamDomainOptions persisting(auto& store, krmx::Commits commits) {
    return {.durability = krmx::durable(store, {.commits = commits})};
}

}  // namespace

TEMPLATE_TEST_CASE("every confirmed event is in the store before any client sees it", "[durable]",
                   KRMX_DURABLE_STORES) {
    TestType stores;
    auto& store = stores.open();
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    Table t{persisting(store, commits)};
    auto& alice = t.join("alice", 10ms);
    auto& bob = t.join("bob", 30ms);
    t.hub.run_until_idle();

    // Whenever a client has a confirmed event, the store has it too (checked after every hub step).
    REQUIRE(t.server.dispatch("<server>", counter::increment(5)));  // server code: stored first too
    REQUIRE(alice.dispatch(counter::increment(2)));
    REQUIRE(alice.dispatch(counter::claim()));
    REQUIRE(bob.dispatch(counter::claim()));  // arrives after alice's claim: invalidated, never stored
    while (t.hub.step()) {
        const auto stored = store.read_stream(counter_domain).size();
        CHECK(alice.confirmed_size() <= stored);
        CHECK(bob.confirmed_size() <= stored);
    }
    REQUIRE(t.converged());

    const auto records = store.read_stream(counter_domain);
    REQUIRE(records.size() == t.server.size());
    REQUIRE(records.size() == 3);
    CHECK(records[0].dispatcher == "<server>");
    CHECK(records[1].type == "increment");
    CHECK(records[1].dispatcher == "alice");
    CHECK(records[1].payload == nlohmann::json(2));
    CHECK(records[2].type == "claim");
    CHECK(records[2].dispatcher == "alice");
    CHECK(records[2].revision == 2);
    CHECK(t.server.statistics().rejected == 1);
}

TEMPLATE_TEST_CASE("a restarted server restores the confirmed stream and relinking clients converge",
                   "[durable]", KRMX_DURABLE_STORES) {
    TestType stores;
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    Counter before;
    std::vector<std::string> sent_before;
    {
        Table t{persisting(stores.open(), commits)};
        auto& alice = t.join("alice", 5ms);
        auto& bob = t.join("bob", 40ms);
        t.hub.run_until_idle();
        for (int i = 0; i < 5; ++i) REQUIRE(alice.dispatch(counter::increment(i)));
        REQUIRE(bob.dispatch(counter::claim()));
        t.hub.run_until_idle();
        // Sent, but the server goes down before it arrives: never confirmed, so never stored.
        REQUIRE(bob.dispatch(counter::increment(100)));
        REQUIRE(bob.pending_count() == 1);
        before = t.server.state();
        REQUIRE(before == Counter{10, "bob"});
        for (std::size_t i = 0; i < t.server.size(); ++i) sent_before.emplace_back(t.server.event_text(i));
    }  // the server and every connection go away

    stores.reopen();
    Table t{persisting(stores.open(), commits)};  // restores when it is made: nothing to forget
    CHECK(t.server.statistics().restored == 6);
    CHECK(t.server.confirmed_size() == 6);
    CHECK(t.server.state() == before);
    CHECK(t.server.statistics().accepted == 0);  // restoring is not accepting: nothing was broadcast

    auto& alice = t.join("alice");
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    CHECK(t.converged());
    CHECK(alice.state() == before);
    // The history re-sends each event exactly as it was received before the restart.
    std::vector<std::string> sent_after;
    for (std::size_t i = 0; i < t.server.size(); ++i) sent_after.emplace_back(t.server.event_text(i));
    CHECK(sent_after == sent_before);

    // The restored stream goes on where it stopped, in the store too.
    REQUIRE(bob.dispatch(counter::increment(1)));
    CHECK_FALSE(alice.dispatch(counter::increment(1)));  // claimed by bob: refused on the spot
    t.hub.run_until_idle();
    CHECK(t.converged());
    CHECK(t.server.state() == Counter{11, "bob"});
    CHECK(stores.open().read_stream(counter_domain).size() == 7);
}

TEST_CASE("a store that refuses the append: the event is not confirmed to anyone and the state is unchanged",
          "[durable]") {
    krmx::MemoryEventStore store;
    Table t{persisting(store, GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous))};
    auto& alice = t.join("alice");
    (void)t.join("bob");
    t.hub.run_until_idle();
    REQUIRE(alice.dispatch(counter::increment(1)));
    t.hub.run_until_idle();

    // Someone else wrote to the stream behind the server's back (a second server on the same store):
    // the expected revision no longer matches, so the server's next append is refused, not forked.
    (void)store.append(counter_domain, krmx::ExpectedRevision::any(),
                       krmx::NewEvent{.type = "increment", .payload = 50, .dispatcher = "intruder"});
    t.hub.client("bob").clear_received();
    REQUIRE(alice.dispatch(counter::increment(2)));
    t.hub.run_until_idle();
    CHECK(t.server.size() == 1);
    CHECK(t.server.state() == Counter{1, std::nullopt});
    CHECK(t.server.statistics().not_stored == 1);
    CHECK(alice.state() == Counter{1, std::nullopt});
    CHECK(alice.pending_count() == 0);
    CHECK(t.hub.client("bob").received().empty());  // nothing was broadcast
    const auto reason = parsed(t.hub.client("alice")).back()["payload"]["reason"].template get<std::string>();
    CHECK(reason.starts_with("event not stored: "));
    CHECK(store.read_stream(counter_domain).size() == 2);  // the intruder's event, not alice's second one
}

TEST_CASE("a stored event the model refuses, or stored in another schema version, stops the domain", "[durable]") {
    // A stored history that the current model cannot replay (bob increments while alice holds the claim):
    // restoring stops loudly instead of silently skipping an event and rewriting history.
    krmx::MemoryEventStore store;
    (void)store.append(counter_domain, krmx::ExpectedRevision::no_stream(),
                       krmx::NewEvent{.type = "claim", .payload = std::nullopt, .dispatcher = "alice"});
    (void)store.append(counter_domain, krmx::ExpectedRevision::exact(0),
                       krmx::NewEvent{.type = "increment", .payload = 1, .dispatcher = "bob"});
    CHECK_THROWS_WITH(Table{{.durability = krmx::durable(store)}},
                      Catch::Contains("stored event 1 (\"increment\") is refused by the model (claimed by someone else)"));
    // An event written in a schema version the model does not write: the domain re-sends stored texts as
    // they are, so it cannot upcast them; it says so rather than serve old shapes as new ones.
    krmx::MemoryEventStore old;
    (void)old.append(counter_domain, krmx::ExpectedRevision::no_stream(),
                     krmx::NewEvent{.type = "increment", .payload = 1, .metadata = {{"schema", 2}}});
    CHECK_THROWS_WITH(Table{{.durability = krmx::durable(old)}},
                      Catch::Contains("has schema version 2, the model writes version 1"));
    // Nothing was attached: the name is free for a domain that works.
    krmx::testing::Hub hub;
    CHECK_THROWS_AS((krmx::StreamDomain{hub, counter_domain, counter::model(), {.durability = krmx::durable(store)}}),
                    krmx::ModelError);
    CHECK_FALSE(hub.host().has_domain(counter_domain));
}

TEST_CASE("pipelined commits need a way back to the domain's thread", "[durable]") {
    // A transport without post(): pipelined durability says what to do instead of hanging.
    struct Plain {
        krmx::net::Session* session;
        krmx::Subscription on_link(krmx::UserCallback f) { return session->on_link(std::move(f)); }
        krmx::Subscription on_unlink(krmx::UserCallback f) { return session->on_unlink(std::move(f)); }
        krmx::Subscription on_message(krmx::UserMessageCallback f) { return session->on_message(std::move(f)); }
        void send(std::string_view user, std::string text) { session->send(user, std::move(text)); }
        void broadcast(std::string text) { session->broadcast(std::move(text)); }
    };
    krmx::testing::Hub hub;
    Plain plain{&hub.server()};
    krmx::DomainHost host{plain};
    krmx::MemoryEventStore store;
    CHECK_THROWS_WITH((krmx::StreamDomain{host, "a", counter::model(), {.durability = krmx::durable(store)}}),
                      Catch::Contains("pass {.post = ...} or {.commits = krmx::Commits::synchronous}"));
    krmx::StreamDomain synchronous{host, "b", counter::model(),
                                   {.durability = krmx::durable(store, {.commits = krmx::Commits::synchronous})}};
    CHECK(synchronous.dispatch("<server>", counter::increment(1)));
    CHECK(synchronous.confirmed_size() == 1);
    CHECK(store.read_stream("b").size() == 1);
}

TEST_CASE("restoring a long stream reads it in batches, never all at once", "[durable]") {
    // A store that records how many events each read asks for.
    struct CountingStore : krmx::MemoryEventStore {
        mutable std::vector<std::size_t> asked;
        [[nodiscard]] std::vector<krmx::RecordedEvent> read_stream(std::string_view stream,
                                                                   krmx::Revision from = 0,
                                                                   std::size_t max_count = krmx::read_unbounded) const {
            asked.push_back(max_count);
            return krmx::MemoryEventStore::read_stream(stream, from, max_count);
        }
    };
    CountingStore store;
    constexpr int events = 10'000;
    std::vector<krmx::NewEvent> batch;
    for (int i = 0; i < events; ++i) {
        batch.push_back(krmx::NewEvent{.type = "increment", .payload = 1, .dispatcher = "alice"});
    }
    (void)store.append(counter_domain, krmx::ExpectedRevision::no_stream(), batch);

    Table t{{.durability = krmx::durable(store)}};
    CHECK(t.server.statistics().restored == events);
    CHECK(t.server.state().counter == events);
    REQUIRE(store.asked.size() == 3);  // 4096 + 4096 + 1808
    for (const std::size_t asked : store.asked) CHECK(asked <= 4096);
}

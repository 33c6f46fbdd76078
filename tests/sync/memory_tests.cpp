// Memory bounded by the state: a durable domain keeps a tail of its stream in memory, reads older events
// back from its store for joiners and resyncs (off the loop, in order, before any live event), restarts
// from its newest usable snapshot, and skips (and counts) every snapshot it cannot trust.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <krmx/sync/durable.hpp>
#include <krmx/sync/projection_domain.hpp>

#include "catch.hpp"
#include "mailbox.hpp"
#include "pipeline_support.hpp"
#include "stores.hpp"
#include "sync_support.hpp"

namespace {

// The claimable counter with snapshots on (revision `revision`).
const krmx::StreamModel<Counter>& snapshot_model(std::uint32_t revision = 1) {
    static std::map<std::uint32_t, krmx::StreamModel<Counter>> models;
    auto [it, made] = models.try_emplace(revision, counter::model());
    if (made) it->second.snapshots(revision);
    return it->second;
}

krmx::MemoryPolicy small_tail(std::size_t tail, std::size_t snapshot_every = std::size_t{1} << 20) {
    return {.tail_events = tail, .tail_bytes = std::size_t{1} << 30, .snapshot_every_events = snapshot_every,
            .snapshot_every_bytes = std::size_t{1} << 30};
}

// The positions of the `stream/append`s and history pages' events a connection received, in order.
std::vector<std::size_t> positions_received(const krmx::testing::ClientEndpoint& connection) {
    std::vector<std::size_t> out;
    for (const auto& message : parsed(connection)) {
        if (message["type"] == "stream/append") {
            out.push_back(message["payload"]["position"].get<std::size_t>());
        } else if (message["type"] == "stream/history") {
            const auto first = message["payload"]["position"].get<std::size_t>();
            for (std::size_t i = 0; i < message["payload"]["events"].size(); ++i) out.push_back(first + i);
        }
    }
    return out;
}

// `n` increments by the server, each one accepted.
template <class Domain>
void accept_increments(Domain& server, int n) {
    for (int i = 0; i < n; ++i) REQUIRE(server.dispatch("<server>", counter::increment(1)));
}

std::vector<std::size_t> zero_to(std::size_t n) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
}

// A connection with a C++ stream client on it, linked.
struct StreamClientFixture {
    StreamClientFixture(krmx::testing::Hub& hub, const std::string& name, const krmx::StreamModel<Counter>& model)
        : connection(hub.connect(name)), client(connection, counter_domain, model) {
        connection.link();
    }
    krmx::testing::ClientEndpoint& connection;
    krmx::StreamClient<Counter> client;
};

}  // namespace

TEST_CASE("a durable domain holds only a tail, and joiners get every event in order", "[durable][memory]") {
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    // Clients that read appends only (as the JavaScript ones), and clients that read history pages.
    const auto features = GENERATE(std::vector<std::string>{}, std::vector<std::string>{"stream/history"});
    krmx::MemoryEventStore store;
    krmx::testing::Hub hub{{.client = {.features = features}}};
    krmx::StreamDomain server{hub, counter_domain, counter::model(),
                              {.durability = krmx::durable(store, {.commits = commits, .memory = small_tail(8)})}};
    accept_increments(server, 100);
    hub.run_until_idle();
    REQUIRE(server.confirmed_size() == 100);
    CHECK(server.state() == Counter{100, std::nullopt});
    // At most the tail and the events since the last capture are held.
    CHECK(server.held_from() >= 88);
    CHECK(server.stream().log().held() <= 12);
    CHECK_THROWS_AS((void)server.event_text(0), std::out_of_range);

    // A bare connection and a C++ stream client both get 0..99, the old ones read back from the store.
    auto& js = hub.connect("js");
    js.link();
    StreamClientFixture cpp{hub, "cpp", counter::model()};
    hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(100));
    CHECK(cpp.client.synced() == !features.empty());  // appends alone never say the history is complete
    CHECK(cpp.client.confirmed_state() == server.state());
    CHECK(server.statistics().history_reads >= 2);
    CHECK(server.statistics().history_read_failures == 0);

    // Events go on, and the memory stays bounded.
    accept_increments(server, 50);
    hub.run_until_idle();
    CHECK(cpp.client.confirmed_state() == Counter{150, std::nullopt});
    CHECK(positions_received(js) == zero_to(150));
    CHECK(server.stream().log().held() <= 12);
}

TEST_CASE("no live event reaches a joiner before the old events it reads back from the store", "[durable][memory]") {
    krmx::MemoryEventStore store;
    krmx::testing::InstrumentedStore instrumented{store};
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, counter_domain, counter::model(),
                              {.durability = krmx::durable(instrumented, {.memory = small_tail(4)})}};
    accept_increments(server, 40);
    hub.run_until_idle();
    REQUIRE(server.held_from() > 0);
    auto& js = hub.connect("js");
    js.link();
    // While its reads are on their way, more events are accepted and confirmed.
    for (int round = 0; round < 20; ++round) {
        REQUIRE(server.dispatch("<server>", counter::increment(1)));
        hub.step();
    }
    hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(60));
}

// A durable domain of 40 events that holds a tail of 4, on a store whose reads can be made to fail.
struct TailOnly {
    explicit TailOnly(krmx::Commits commits)
        : server{hub, counter_domain, counter::model(),
                 {.durability = krmx::durable(instrumented, {.commits = commits, .memory = small_tail(4)})}} {
        accept_increments(server, 40);
        hub.run_until_idle();
        REQUIRE(server.held_from() > 0);
    }
    // A user that links while the store's next `failures` reads fail.
    krmx::testing::ClientEndpoint& join_unreadable(std::string name, std::size_t failures) {
        instrumented.fail_reads(failures);
        auto& connection = hub.connect(std::move(name));
        connection.link();
        hub.run_until_idle();
        return connection;
    }
    krmx::MemoryEventStore store;
    krmx::testing::InstrumentedStore<krmx::MemoryEventStore> instrumented{store};
    krmx::testing::Hub hub;
    krmx::StreamDomain<Counter> server;
};

TEST_CASE("a joiner whose old events cannot be read hears nothing live until a read succeeds", "[durable][memory]") {
    TailOnly t{GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous)};
    // The store cannot be read while the user links: its history waits, and so do the live events (a gap
    // in them would be events lost without a word).
    auto& js = t.join_unreadable("js", 2);
    CHECK(t.server.statistics().history_read_failures == 1);
    CHECK(positions_received(js).empty());
    REQUIRE(t.server.dispatch("<server>", counter::increment(1)));  // its read is tried again after this commit
    t.hub.run_until_idle();
    CHECK(t.server.statistics().history_read_failures == 2);
    CHECK(positions_received(js).empty());
    // The store reads again: after the next commit the user gets every event, in order.
    REQUIRE(t.server.dispatch("<server>", counter::increment(1)));
    t.hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(42));
    accept_increments(t.server, 5);
    t.hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(47));
}

TEST_CASE("a joiner whose old events cannot be read gets them on a timer in a quiet domain", "[durable][memory]") {
    using namespace std::chrono_literals;
    TailOnly t{GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous)};
    auto& js = t.join_unreadable("js", 2);
    CHECK(t.server.statistics().history_read_failures == 1);
    // Nobody acts: no commit comes to try the read again. The timer does, after 100 ms, then 200 ms.
    const auto after = [&](std::chrono::milliseconds wait) {
        t.hub.advance(wait);
        t.hub.run_until_idle();
    };
    after(99ms);
    CHECK(t.server.statistics().history_read_failures == 1);
    after(1ms);
    CHECK(t.server.statistics().history_read_failures == 2);
    CHECK(positions_received(js).empty());
    after(199ms);
    CHECK(positions_received(js).empty());
    after(1ms);
    CHECK(t.server.statistics().history_read_failures == 2);
    CHECK(positions_received(js) == zero_to(40));
    accept_increments(t.server, 5);
    t.hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(45));
    // Once reads work again the next failure waits 100 ms again, not longer.
    auto& late = t.join_unreadable("late", 1);
    CHECK(t.server.statistics().history_read_failures == 3);
    after(100ms);
    CHECK(positions_received(late) == zero_to(45));
    CHECK(t.hub.statistics().timers == 3);
}

TEST_CASE("a durable domain keeps accepting past max_history_bytes; an in-memory one fills up", "[durable][memory]") {
    krmx::MemoryEventStore store;
    krmx::testing::Hub hub;
    krmx::StreamDomain durable{hub, "durable", counter::model(),
                               {.max_history_bytes = 2000,
                                .durability = krmx::durable(store, {.commits = krmx::Commits::synchronous,
                                                                    .memory = small_tail(16)})}};
    krmx::StreamDomain in_memory{hub, "in-memory", counter::model(), {.max_history_bytes = 2000}};
    std::size_t refused = 0;
    for (int i = 0; i < 500; ++i) {
        REQUIRE(durable.dispatch("<server>", counter::increment(1)));
        if (!in_memory.dispatch("<server>", counter::increment(1))) ++refused;
    }
    CHECK(durable.size() == 500);
    CHECK(durable.state().counter == 500);
    CHECK(refused > 400);
    CHECK(in_memory.statistics().too_large == refused);
}

TEST_CASE("a failed commit after a capture takes the capture back with its events", "[durable][memory]") {
    krmx::MemoryEventStore store;
    krmx::testing::InstrumentedStore instrumented{store};
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    const auto options = krmx::DurableOptions{.commits = krmx::Commits::synchronous,
                                              .memory = small_tail(4, 4),
                                              .snapshots = checkpoints};
    {
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(), {.durability = krmx::durable(instrumented, options)}};
        accept_increments(server, 10);
        // Event 11 would complete a capture at 12; its commit fails: the capture holds a lost event.
        REQUIRE(server.dispatch("<server>", counter::increment(1)));
        instrumented.fail_next("disk full");
        CHECK_FALSE(server.dispatch("<server>", counter::increment(1)));
        CHECK(server.size() == 11);
        for (int i = 0; i < 9; ++i) REQUIRE(server.dispatch("<server>", counter::increment(2)));
        hub.run_until_idle();
        CHECK(server.state().counter == 29);
    }
    // Every snapshot taken is of stored events only: the restart agrees with a full replay.
    krmx::StreamDomain restarted{hub, counter_domain, snapshot_model(), {.durability = krmx::durable(instrumented, options)}};
    CHECK(restarted.snapshot_statistics().restored == 1);
    CHECK(restarted.state().counter == 29);
    CHECK(restarted.size() == 20);
}

TEMPLATE_TEST_CASE("a restart loads the newest snapshot and replays only the events after it", "[durable][snapshot]",
                   KRMX_DURABLE_STORES) {
    TestType stores;
    krmx::MemoryCheckpointStore checkpoints;
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    const auto options = [&] {
        return krmx::DurableOptions{.commits = commits, .memory = small_tail(64, 100), .snapshots = checkpoints};
    };
    krmx::testing::Hub hub{{.client = {.features = {}}}};  // clients as the JavaScript ones: appends only
    Counter before;
    {
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(), {.durability = krmx::durable(stores.open(), options())}};
        CHECK(server.snapshot_statistics().restored == 0);
        for (int i = 0; i < 1000; ++i) {
            REQUIRE(server.dispatch("<server>", counter::increment(1)));
            if (i % 64 == 0) hub.run_until_idle();
        }
        REQUIRE(server.dispatch("bob", counter::claim()));
        hub.run_until_idle();
        before = server.state();
        CHECK(server.snapshot_statistics().saved >= 7);  // captures every 32 events, saved 100 or more apart
        CHECK(server.snapshot_statistics().save_failures == 0);
    }
    stores.reopen();
    krmx::StreamDomain server{hub, counter_domain, snapshot_model(), {.durability = krmx::durable(stores.open(), options())}};
    CHECK(server.state() == before);
    CHECK(server.size() == 1001);
    CHECK(server.snapshot_statistics().restored == 1);
    CHECK(server.snapshot_statistics().skipped() == 0);
    CHECK(server.statistics().restored < 200);  // the events after the snapshot, not 1001
    CHECK(server.stream().counters().handler_calls < 200);
    // A JavaScript client joining now still gets the whole stream as events.
    auto& js = hub.connect("js");
    js.link();
    hub.run_until_idle();
    CHECK(positions_received(js) == zero_to(1001));
    // And the stream goes on where it was.
    REQUIRE(server.dispatch("bob", counter::increment(1)));
    hub.run_until_idle();
    CHECK(server.state().counter == 1001);
}

namespace aside_writes {

// A state that counts where it is written as JSON: on the domain's thread (the test's, the hub's loop) or
// elsewhere, and that can be made to fail writing.
struct Traced {
    int total = 0;
    friend bool operator==(const Traced&, const Traced&) = default;
};
std::thread::id loop_thread;
std::atomic<int> written_on_loop{0};
std::atomic<int> written_aside{0};
std::atomic<bool> fail{false};
std::atomic<bool> held{false};  // writing off the loop waits while it is set
void to_json(nlohmann::json& j, const Traced& t) {
    const bool on_loop = std::this_thread::get_id() == loop_thread;
    ++(on_loop ? written_on_loop : written_aside);
    if (fail) throw std::runtime_error("the disk of the JSON is full");
    while (held && !on_loop) std::this_thread::sleep_for(std::chrono::milliseconds{1});
    j = nlohmann::json{{"total", t.total}};
}
void from_json(const nlohmann::json& j, Traced& t) { j.at("total").get_to(t.total); }

inline constexpr krmx::EventType<int> add{"add"};
const krmx::StreamModel<Traced>& model() {
    static const auto m = [] {
        auto made = krmx::StreamModel<Traced>{}.when(add, [](Traced& s, std::string_view, int n) { s.total += n; });
        made.snapshots(1);
        return made;
    }();
    return m;
}

// A memory store and its snapshots, on a hub whose thread is the loop; nothing held or failing.
struct Fixture {
    Fixture() {
        loop_thread = std::this_thread::get_id();
        written_aside = 0;
        fail = false;
        held = false;
    }
    [[nodiscard]] krmx::Durability durable(krmx::MemoryPolicy memory, krmx::PostToLoop post = {}) {
        return krmx::durable(store, {.post = std::move(post), .memory = memory, .snapshots = checkpoints});
    }
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
};

}  // namespace aside_writes

TEST_CASE("a pipelined domain writes its captures as JSON off its loop, and a failure there is counted",
          "[durable][snapshot]") {
    using namespace aside_writes;
    Fixture t;
    auto& hub = t.hub;
    {
        krmx::StreamDomain server{hub, "traced", model(), {.durability = t.durable(small_tail(64, 100))}};
        const int on_loop_at_start = written_on_loop;  // the check that the state can be snapshot, when made
        for (int i = 0; i < 1000; ++i) {
            REQUIRE(server.dispatch("<server>", add(1)));
            if (i % 16 == 0) hub.run_until_idle();
        }
        hub.run_until_idle();
        CHECK(server.snapshot_statistics().saved >= 7);  // captures every 32 events, saved 100 or more apart
        CHECK(server.snapshot_statistics().save_failures == 0);
        CHECK(server.stream().log().held() <= 64);
        CHECK(written_aside >= 25);
        CHECK(written_on_loop == on_loop_at_start);
        // A failure on the other thread is counted on the loop, and the tail is still let go.
        fail = true;
        for (int i = 0; i < 500; ++i) {
            REQUIRE(server.dispatch("<server>", add(1)));
            if (i % 16 == 0) hub.run_until_idle();
        }
        hub.run_until_idle();
        fail = false;
        CHECK(server.snapshot_statistics().save_failures >= 10);
        CHECK(server.stream().log().held() <= 64);
        CHECK(server.state().total == 1500);
    }
    // A restart loads the newest snapshot saved before the failures and replays the events after it.
    krmx::StreamDomain server{hub, "traced", model(), {.durability = t.durable(small_tail(64, 100))}};
    CHECK(server.snapshot_statistics().restored == 1);
    CHECK(server.state().total == 1500);
    CHECK(server.statistics().restored >= 500);
    CHECK(server.statistics().restored < 700);
}

TEST_CASE("after a burst, the capture of everything stored follows the one being written aside",
          "[durable][snapshot]") {
    using namespace aside_writes;
    Fixture t;
    krmx::StreamDomain server{t.hub, "traced", model(), {.durability = t.durable(small_tail(1000, 1000))}};
    for (int i = 0; i < 5000; ++i) REQUIRE(server.dispatch("<server>", add(1)));  // one burst, then quiet
    t.hub.run_until_idle();
    CHECK(server.snapshot_statistics().saved == 1);  // of the state after the burst
    CHECK(server.stream().log().held() <= 1000);
}

TEST_CASE("a domain that goes while its captures are written aside waits for them and hears nothing after",
          "[durable][snapshot]") {
    using namespace aside_writes;
    Fixture t;
    krmx::testing::Mailbox loop;  // the domain's loop, run by hand
    held = true;
    std::thread opener;
    {
        krmx::StreamDomain server{t.hub, "traced", model(), {.durability = t.durable(small_tail(64, 100), loop.poster())}};
        for (int i = 0; i < 200; ++i) {
            REQUIRE(server.dispatch("<server>", add(1)));
            (void)loop.run_posted();
        }
        while (server.uncommitted() > 0) (void)loop.wait_and_run(std::chrono::milliseconds{50});
        CHECK(written_aside <= 1);  // captures handed over (one every 32 events or more), the first one held
        opener = std::thread{[] {
            std::this_thread::sleep_for(std::chrono::milliseconds{100});
            held = false;
        }};
    }
    opener.join();
    // The domain waited for every capture it had handed over as it went (how many depends on how fast the
    // commits came back: at most one waits for its events to be stored); their outcomes come to a domain
    // that is gone, and nothing happens.
    CHECK(written_aside >= 1);
    CHECK(loop.run_posted() == static_cast<std::size_t>(written_aside.load()));
}

TEST_CASE("snapshots that cannot be trusted are skipped, counted, and a full replay serves", "[durable][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    const auto options = krmx::DurableOptions{.commits = krmx::Commits::synchronous,
                                              .memory = small_tail(16, 10),
                                              .snapshots = checkpoints};
    {
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(1), {.durability = krmx::durable(store, options)}};
        accept_increments(server, 95);
    }
    SECTION("of another revision of the model") {
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(2), {.durability = krmx::durable(store, options)}};
        CHECK(server.state().counter == 95);
        CHECK(server.snapshot_statistics().other_revision == 2);
        CHECK(server.snapshot_statistics().restored == 0);
        CHECK(server.statistics().restored == 95);
    }
    SECTION("of another stream: a store that does not hold the event it follows") {
        krmx::MemoryEventStore other;
        {
            krmx::StreamDomain writer{hub, counter_domain, counter::model(),
                                      {.durability = krmx::durable(other, {.commits = krmx::Commits::synchronous})}};
            for (int i = 0; i < 95; ++i) REQUIRE(writer.dispatch("<server>", counter::increment(2)));
        }
        krmx::StreamDomain server{hub, "counter", snapshot_model(1), {.durability = krmx::durable(other, options)}};
        CHECK(server.state().counter == 190);
        CHECK(server.snapshot_statistics().not_following == 2);
        CHECK(server.statistics().restored == 95);
    }
    SECTION("whose state the model's from_json refuses") {
        for (std::size_t slot = 0; slot < 2; ++slot) {
            auto checkpoint = *checkpoints.load(krmx::detail::snapshot_key(counter_domain, slot));
            checkpoint.state["state"] = {{"counter", "not a number"}};
            checkpoints.save(krmx::detail::snapshot_key(counter_domain, slot), checkpoint);
        }
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(1), {.durability = krmx::durable(store, options)}};
        CHECK(server.state().counter == 95);
        CHECK(server.snapshot_statistics().unreadable == 2);
    }
    SECTION("the newest is damaged: the older one serves") {
        auto newest = krmx::load_snapshots(checkpoints, counter_domain, 1, *std::make_unique<krmx::SnapshotStatistics>());
        REQUIRE(newest.size() == 2);
        for (std::size_t slot = 0; slot < 2; ++slot) {
            auto checkpoint = *checkpoints.load(krmx::detail::snapshot_key(counter_domain, slot));
            if (checkpoint.position == newest[0].position) {
                checkpoint.state.erase("last_event_id");
                checkpoints.save(krmx::detail::snapshot_key(counter_domain, slot), checkpoint);
            }
        }
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(1), {.durability = krmx::durable(store, options)}};
        CHECK(server.state().counter == 95);
        CHECK(server.snapshot_statistics().damaged == 1);
        CHECK(server.snapshot_statistics().restored == 1);
        CHECK(server.statistics().restored == 95 - newest[1].position);
    }
}

namespace {
struct Opaque {
    int n = 0;
};
struct Unwritable {
    double x = 0;
};
void to_json(nlohmann::json& j, const Unwritable&) { j = "?"; }
void from_json(const nlohmann::json&, Unwritable&) { throw std::runtime_error("cannot read a Unwritable"); }
}  // namespace

TEST_CASE("snapshots that cannot work are refused when the domain is made, not at the first snapshot",
          "[durable][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    const auto durability = krmx::durable(store, {.commits = krmx::Commits::synchronous, .snapshots = checkpoints});
    const krmx::EventType<int> add{"add"};
    auto opaque = krmx::StreamModel<Opaque>{}.when(add, [](Opaque& o, std::string_view, int n) { o.n += n; });
    CHECK_THROWS_WITH((krmx::StreamDomain{hub, "opaque", opaque, {.durability = durability}}),
                      Catch::Matchers::Contains("call StreamModel::snapshots(revision)"));
    auto unwritable = krmx::StreamModel<Unwritable>{}.when(add, [](Unwritable& u, std::string_view, int n) { u.x += n; });
    unwritable.snapshots(1);
    CHECK_THROWS_WITH((krmx::StreamDomain{hub, "unwritable", unwritable, {.durability = durability}}),
                      Catch::Matchers::Contains("from_json failed on what to_json wrote of the initial state"));
    // Without a snapshot store, neither matters.
    krmx::StreamDomain fine{hub, "fine", opaque, {.durability = krmx::durable(store, {.commits = krmx::Commits::synchronous})}};
    CHECK(fine.dispatch("<server>", add(1)));
}

#if defined(KRMX_TEST_SQLITE)
TEST_CASE("a SQLite domain restarts from a snapshot in the same file", "[durable][snapshot][sqlite]") {
    krmx::testing::TempDir dir;
    const auto path = dir.path() / "game.sqlite";
    krmx::testing::Hub hub;
    Counter before;
    {
        krmx::SqliteEventStore store{path};
        krmx::SqliteCheckpointStore checkpoints{path};
        krmx::StreamDomain server{hub, counter_domain, snapshot_model(),
                                  {.durability = krmx::durable(store, {.memory = small_tail(256, 500), .snapshots = checkpoints})}};
        for (int i = 0; i < 2000; ++i) {
            REQUIRE(server.dispatch("<server>", counter::increment(1)));
            if (i % 100 == 0) hub.run_until_idle();
        }
        hub.run_until_idle();
        before = server.state();
        CHECK(server.snapshot_statistics().saved >= 3);
    }
    krmx::SqliteEventStore store{path};
    krmx::SqliteCheckpointStore checkpoints{path};
    krmx::StreamDomain server{hub, counter_domain, snapshot_model(),
                              {.durability = krmx::durable(store, {.memory = small_tail(256, 500), .snapshots = checkpoints})}};
    CHECK(server.state() == before);
    CHECK(server.snapshot_statistics().restored == 1);
    CHECK(server.statistics().restored <= 500);
}
#endif

TEST_CASE("a durable projection domain with a short tail restores its views from a snapshot", "[durable][snapshot]") {
    // The shown state follows the private one through captures and restarts.
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    krmx::ProjectionModel<Counter, nlohmann::json> model{Counter{},
                                                          [](const Counter& c, std::string_view) { return nlohmann::json(c.counter); }};
    model.when(counter::increment, [](Counter& c, std::string_view, int n) { c.counter += n; }).snapshots(1);
    const auto options = krmx::DurableOptions{.memory = small_tail(8, 16), .snapshots = checkpoints};
    {
        krmx::ProjectionDomain server{hub, "view", model, {.durability = krmx::durable(store, options)}};
        for (int i = 0; i < 100; ++i) {
            REQUIRE(server.dispatch("<server>", counter::increment(1)));
            hub.run_until_idle();
        }
        CHECK(server.shown_state().counter == 100);
        CHECK(server.stream().log().held() <= 12);
    }
    krmx::ProjectionDomain server{hub, "view", model, {.durability = krmx::durable(store, options)}};
    CHECK(server.shown_state().counter == 100);
    CHECK(server.snapshot_statistics().restored == 1);
    REQUIRE(server.dispatch("<server>", counter::increment(1)));
    hub.run_until_idle();
    CHECK(server.shown_state().counter == 101);
}

TEST_CASE("a C++ client far behind joins from a snapshot, one that cannot read it from the events",
          "[durable][snapshot]") {
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, counter_domain, snapshot_model(),
                              {.durability = krmx::durable(store, {.memory = small_tail(64, 100), .snapshots = checkpoints})}};
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(server.dispatch("<server>", counter::increment(1)));
        if (i % 100 == 0) hub.run_until_idle();
    }
    REQUIRE(server.dispatch("bob", counter::claim()));
    hub.run_until_idle();
    const auto bytes = [](const krmx::testing::ClientEndpoint& c) {
        std::size_t n = 0;
        for (const auto& text : c.received()) n += text.size();
        return n;
    };

    StreamClientFixture reader{hub, "reader", snapshot_model()};
    hub.run_until_idle();
    CHECK(reader.client.synced());
    CHECK(reader.client.confirmed_state() == server.state());
    CHECK(reader.client.confirmed_size() == 1001);
    CHECK(server.statistics().snapshots_sent == 1);
    const auto first = parsed(reader.connection).front();
    CHECK(first["type"] == "stream/snapshot");
    CHECK(first["payload"]["position"].get<std::size_t>() > 900);

    // Another revision of the model cannot read it: it asks for the events, and gets them all.
    StreamClientFixture other{hub, "other", snapshot_model(2)};
    hub.run_until_idle();
    CHECK(other.client.synced());
    CHECK(other.client.confirmed_state() == server.state());
    CHECK(server.statistics().snapshots_sent == 2);
    // A client whose model has no snapshots says so up front and never gets one.
    StreamClientFixture plain{hub, "plain", counter::model()};
    hub.run_until_idle();
    CHECK(plain.client.synced());
    CHECK(plain.client.confirmed_state() == server.state());
    CHECK(server.statistics().snapshots_sent == 3);  // on link: the client only answers with a resync
    CHECK(bytes(reader.connection) * 10 < bytes(plain.connection));

    // Live events reach all three, after what they caught up on.
    REQUIRE(server.dispatch("bob", counter::increment(5)));
    hub.run_until_idle();
    CHECK(reader.client.confirmed_state().counter == 1005);
    CHECK(other.client.confirmed_state().counter == 1005);
    CHECK(plain.client.confirmed_state().counter == 1005);
}

TEST_CASE("state_at rebuilds any past state, from memory or from the store", "[durable][memory]") {
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    const bool snapshots = GENERATE(false, true);
    krmx::MemoryEventStore store;
    krmx::MemoryCheckpointStore checkpoints;
    krmx::testing::Hub hub;
    krmx::DurableOptions options{.commits = commits, .memory = small_tail(8, 16)};
    if (snapshots) options.snapshots = checkpoints;
    krmx::StreamDomain server{hub, counter_domain, snapshots ? snapshot_model() : counter::model(),
                              {.durability = krmx::durable(store, options)}};
    for (int i = 0; i < 100; ++i) {
        const auto by = i >= 40 ? "bob" : "<server>";  // bob claims the counter with event 40
        REQUIRE((i == 40 ? server.dispatch(by, counter::claim()) : server.dispatch(by, counter::increment(1))));
        hub.run_until_idle();
    }
    REQUIRE(server.held_from() > 50);
    std::map<std::size_t, Counter> seen;
    std::vector<std::string> errors;
    for (const std::size_t position : {0, 1, 40, 41, 60, 99, 100, 101}) {
        server.state_at(position, [&, position](std::optional<Counter> state, std::optional<std::string> error) {
            if (state) seen[position] = *state;
            if (error) errors.push_back(*error);
        });
    }
    hub.run_until_idle();
    CHECK(seen[0] == Counter{});
    CHECK(seen[1] == Counter{1, std::nullopt});
    CHECK(seen[40] == Counter{40, std::nullopt});
    CHECK(seen[41] == Counter{40, "bob"});
    CHECK(seen[60] == Counter{59, "bob"});
    CHECK(seen[99] == Counter{98, "bob"});
    CHECK(seen[100] == server.state());
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == "position 101 is past the confirmed events (100)");
}

TEST_CASE("a user dismissed while it catches up on old events gets none of them after", "[durable][memory][audience]") {
    krmx::MemoryEventStore store;
    krmx::testing::Hub hub;
    krmx::StreamDomain room{hub, "room", counter::model(),
                            {.durability = krmx::durable(store, {.memory = small_tail(4)}), .audience = krmx::Audience::members}};
    for (int i = 0; i < 40; ++i) REQUIRE(room.dispatch("<server>", counter::increment(1)));
    hub.run_until_idle();
    REQUIRE(room.held_from() > 0);
    auto& eve = hub.connect("eve");
    eve.link();
    hub.run_until_idle();
    eve.clear_received();
    room.admit("eve");   // the old events are read off the loop...
    room.dismiss("eve");  // ...and she leaves before they arrive
    REQUIRE(room.dispatch("<server>", counter::increment(1)));
    hub.run_until_idle();
    const auto received = parsed(eve);
    REQUIRE_FALSE(received.empty());
    CHECK(received.back()["type"] == "stream/dismissed");
    // Nothing of the room reaches her after the dismissal: neither old events read back nor the new one.
    std::size_t after = 0;
    bool dismissed = false;
    for (const auto& message : received) {
        if (message["type"] == "stream/dismissed") dismissed = true;
        else if (dismissed) ++after;
    }
    CHECK(after == 0);
}

TEST_CASE("the host inspects a domain's events and states across the tail and the store", "[durable][memory][inspect]") {
    const auto commits = GENERATE(krmx::Commits::pipelined, krmx::Commits::synchronous);
    krmx::MemoryEventStore store;
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, counter_domain, counter::model(),
                              {.durability = krmx::durable(store, {.commits = commits, .memory = small_tail(8)})}};
    for (int i = 0; i < 30; ++i) {
        REQUIRE(server.dispatch("<server>", counter::increment(i)));
        hub.run_until_idle();
    }
    REQUIRE(server.held_from() > 10);
    std::vector<std::pair<nlohmann::json, std::optional<std::string>>> answers;
    const auto keep = [&](nlohmann::json result, std::optional<std::string> error) {
        answers.emplace_back(std::move(result), std::move(error));
    };
    hub.host().inspect_events(counter_domain, 5, 20, keep);   // from the store, then from memory
    hub.host().inspect_events(counter_domain, 28, 100, keep);  // past the end: cut at the end
    hub.host().inspect_state(counter_domain, 10, keep);
    hub.host().inspect_state(counter_domain, 31, keep);
    hub.host().inspect_state("nowhere", 0, keep);
    hub.run_until_idle();
    REQUIRE(answers.size() == 5);
    // In the order they were asked when all come from memory; store reads may answer later: find each.
    const auto find = [&](auto predicate) {
        for (const auto& a : answers) {
            if (predicate(a)) return a;
        }
        FAIL("no such answer");
        return answers.front();
    };
    const auto twenty = find([](const auto& a) { return a.first.is_array() && a.first.size() == 20; });
    CHECK(twenty.first.front() == nlohmann::json{{"position", 5}, {"dispatcher", "<server>"},
                                                 {"event", {{"type", "increment"}, {"payload", 5}}}});
    CHECK(twenty.first.back()["position"] == 24);
    const auto last_two = find([](const auto& a) { return a.first.is_array() && a.first.size() == 2; });
    CHECK(last_two.first.back()["position"] == 29);
    const auto state = find([](const auto& a) { return a.first.is_object(); });
    CHECK(state.first == nlohmann::json{{"counter", 45}});  // 0 + 1 + ... + 9
    CHECK(find([](const auto& a) { return a.second && a.second->starts_with("position 31"); }).second);
    CHECK(*find([](const auto& a) { return a.second && a.second->starts_with("no domain"); }).second ==
          R"(no domain "nowhere")");
}

TEST_CASE("a resync from before the oldest event held is answered from the store", "[durable][memory]") {
    krmx::MemoryEventStore store;
    krmx::testing::Hub hub;  // its clients read history pages
    krmx::StreamDomain server{hub, counter_domain, counter::model(),
                              {.durability = krmx::durable(store, {.memory = small_tail(8)})}};
    accept_increments(server, 50);
    hub.run_until_idle();
    REQUIRE(server.held_from() > 10);
    auto& raw = hub.connect("raw");
    raw.link();
    hub.run_until_idle();
    raw.clear_received();
    raw.send(krmx::detail::resync_message(counter_domain, 5));
    hub.run_until_idle();
    // From one event before the position asked (an event the client holds), to the end, in order.
    std::vector<std::size_t> expected;
    for (std::size_t i = 4; i < 50; ++i) expected.push_back(i);
    CHECK(positions_received(raw) == expected);
    CHECK(parsed(raw).back()["payload"].value("more", false) == false);
    CHECK(server.statistics().history_reads >= 1);
}

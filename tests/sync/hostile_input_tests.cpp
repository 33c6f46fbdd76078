// Hostile input found by attacking the server and the client (issue 12): each case failed before its fix.
// The rule behind them: whatever the server accepts, every client reads identically, live and in history.
#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "sync_support.hpp"

using nlohmann::json;

// Named, so that a unity build of this folder keeps these helpers apart from those of the other files.
namespace hostile_input_tests {
namespace {

std::string append(const std::string& event, int id = 5) {
    return R"({"type":"stream/append","payload":{"domain":"counter","event":)" + event +
           R"(,"id":)" + std::to_string(id) + "}}";
}

// A table with some state, a bystander client (bob) and a raw connection for the attacker (mallory).
struct Attack {
    Attack() {
        (void)t.server.dispatch("alice", counter::increment(3));
        t.join("bob");
        t.hub.run_until_idle();
    }
    // Sends from mallory, linking mallory again first when an earlier frame got it unlinked.
    void send(const std::string& text) {
        if (!mallory.linked()) {
            mallory.link();
            t.hub.run_until_idle();
        }
        mallory.send(text);
        t.hub.run_until_idle();
    }
    // The session reads every frame once under the one grammar: a frame outside it unlinks its sender
    // (Krmx's rule for unparsable frames) and never reaches a domain.
    [[nodiscard]] std::uint64_t refused_frames() const {
        return t.hub.server().statistics().unlinked_by_bad_message;
    }
    // A late joiner links, syncs and agrees with the server; every client agrees.
    void everyone_agrees() {
        auto& late = t.join("late" + std::to_string(++joiners));
        t.hub.run_until_idle();
        CHECK(late.synced());
        CHECK(t.converged());
        for (const auto& [name, c] : t.clients) {
            INFO(name);
            CHECK(c->statistics().out_of_order == 0);
            CHECK(c->statistics().divergent == 0);
            CHECK(c->statistics().ignored == 0);
        }
    }
    Table t;
    krmx::testing::ClientEndpoint& mallory = t.raw("mallory");
    int joiners = 0;
};

}  // namespace

TEST_CASE("numbers that overflow a double and lone surrogates are refused without an exception") {
    for (const std::string event : {
             R"({"type":"increment","payload":1e400})",
             R"({"type":"increment","payload":-1e400})",
             R"({"type":"increment","payload":[1e400]})",
             R"({"type":"claim","payload":1e400})",
             R"({"type":"re\ud800lease"})",
             R"({"type":"increment","payload":"\udc00"})",
             R"({"type":"increment","payload":1,"note":"\ud800x"})",
             R"({"type":"increment","payload":1,"note":"\ud800\u0041"})",
             R"({"type":"increment","payload":100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000})",
         }) {
        INFO(event);
        Attack a;
        REQUIRE_NOTHROW(a.send(append(event)));
        CHECK(a.refused_frames() == 1);
        CHECK(a.t.server.size() == 1);
        a.everyone_agrees();
    }
}

TEST_CASE("an escaped key cannot make the server and the clients read different payloads") {
    for (const std::string event : {
             R"({"type":"increment","payload":1,"p\u0061yload":1000})",
             R"({"type":"increment","payload":1,"payload":1000})",
             R"({"t\u0079pe":"claim","type":"increment","payload":1})",
         }) {
        INFO(event);
        Attack a;
        REQUIRE_NOTHROW(a.send(append(event)));
        CHECK(a.t.server.size() == 1);  // refused: the same key twice
        CHECK(a.refused_frames() == 1);
        a.everyone_agrees();
    }
    SECTION("escaped keys that are not repeated are read alike by everyone") {
        Attack a;
        a.send(append(R"({"t\u0079pe":"increment","p\u0061yload":2})"));
        CHECK(a.t.server.size() == 2);
        CHECK(a.t.server.state().counter == 5);
        a.everyone_agrees();
    }
}

TEST_CASE("an accepted event never cuts a C++ client off") {
    // Members the server does not read are held to the same grammar as those it does.
    Attack a;
    a.send(append(R"({"type":"increment","payload":1,"x":1e400})"));
    a.send(append(R"({"type":"increment","payload":1,"note":"\ud800"})"));
    a.send(append(R"({"type":"increment","payload":1,"big":9007199254740993})"));
    a.send(append(R"({"type":"increment","payload":2,"fine":[1.5e300,-0,"\ud83d\ude00"]})", 6));
    CHECK(a.t.server.size() == 2);
    a.everyone_agrees();
}

TEST_CASE("an event nested past the event depth limit is refused, so histories stay readable") {
    // This runs the production session (the hub's server): one depth limit holds in every layer, with
    // room for the envelopes around an event in any message.
    Attack a;
    const auto nested = [](std::size_t depth) {
        return R"({"type":"increment","payload":1,"x":)" + std::string(depth - 1, '[') +
               std::string(depth - 1, ']') + "}";
    };
    a.mallory.clear_received();
    a.send(append(nested(krmx::detail::json_max_event_depth + 1)));
    CHECK(a.t.server.size() == 1);
    REQUIRE(a.mallory.received().size() == 1);  // refused with a reason, not dropped: mallory stays linked
    CHECK(json::parse(a.mallory.received()[0])["payload"]["reason"] == "event nested too deeply (129 levels; at most 128)");
    CHECK(a.mallory.linked());
    a.send(append(nested(krmx::detail::json_max_event_depth - 1), 6));
    a.send(append(nested(krmx::detail::json_max_event_depth), 7));
    CHECK(a.t.server.size() == 3);  // at the limit: accepted, and in the history for late joiners
    CHECK(a.refused_frames() == 0);
    a.everyone_agrees();
    // A message deeper than any envelope allows is no message: its sender is unlinked.
    a.send(append(nested(krmx::detail::json_max_message_depth)));
    CHECK(a.refused_frames() == 1);
    CHECK(a.t.server.size() == 3);
}

TEST_CASE("a history larger than one message reaches a late joiner in pages that each fit") {
    krmx::StreamDomainOptions options;
    Table t{options};
    auto& mallory = t.raw("mallory");
    // Enough events at the largest accepted size to make a history far over any one message.
    const std::size_t pad = t.server.options().max_event_bytes - 64;
    const std::size_t events = 2 * t.host.options().max_message_bytes / pad + 3;
    for (std::size_t i = 0; i < events; ++i) {
        mallory.send(append(R"({"type":"increment","payload":1,"pad":")" + std::string(pad, 'x') + "\"}",
                            static_cast<int>(i) + 1));
        t.hub.run_until_idle();
    }
    REQUIRE(t.server.size() == events);
    auto& late = t.join("late");
    std::size_t largest = 0;
    const auto watch = t.hub.on_delivery([&](const krmx::testing::Delivery& d) {
        if (!d.to_server) largest = std::max(largest, d.text.size());
    });
    t.hub.run_until_idle();
    CHECK(late.synced());
    CHECK(late.confirmed_size() == events);
    CHECK(late.statistics().histories > 1);
    CHECK(largest <= t.host.options().max_message_bytes);
    CHECK(largest <= t.client_options.max_message_bytes);
    CHECK(t.converged());
}

TEST_CASE("events and histories have size limits, refused with a reason") {
    Table t{krmx::StreamDomainOptions{.max_history_bytes = 4096}};
    auto& mallory = t.raw("mallory");
    mallory.send(append(R"({"type":"increment","payload":1,"pad":")" +
                        std::string(t.server.options().max_event_bytes, 'x') + "\"}"));
    t.hub.run_until_idle();
    REQUIRE(mallory.received().size() == 1);
    CHECK(json::parse(mallory.received()[0])["payload"]["reason"].get<std::string>().starts_with(
        "event too large"));
    for (int i = 0; i < 20; ++i) {
        mallory.send(append(R"({"type":"increment","payload":1,"pad":")" + std::string(500, 'x') + "\"}", i));
        t.hub.run_until_idle();
    }
    CHECK(t.server.size() < 20);
    CHECK(t.server.size() > 0);
    const auto last = json::parse(mallory.received().back());
    CHECK(last["type"] == "stream/invalidate");
    CHECK(last["payload"]["reason"].get<std::string>().starts_with("stream is full"));
    CHECK(t.server.statistics().too_large == 21 - t.server.size());
}

TEST_CASE("a user named like the server cannot dispatch as the server") {
    // The Krmx username rule refuses "<server>" already; an application may loosen it.
    krmx::testing::HubOptions loose;
    loose.session.is_valid_username = [](std::string_view) { return true; };
    Table t{{}, {}, loose};
    auto& fake = t.raw(std::string{krmx::server_dispatcher});
    REQUIRE(fake.linked());
    fake.send(append(R"({"type":"claim"})"));
    t.hub.run_until_idle();
    CHECK(t.server.size() == 0);
    REQUIRE(fake.received().size() == 1);
    CHECK(json::parse(fake.received()[0])["payload"]["reason"] ==
          "the name \"<server>\" is reserved for the server");
    SECTION("nor as a name server code has dispatched with") {
        (void)t.server.dispatch("referee", counter::increment(1));
        auto& referee = t.raw("referee");
        referee.send(append(R"({"type":"claim"})"));
        t.hub.run_until_idle();
        CHECK(t.server.size() == 1);
    }
}

TEST_CASE("a client that falls out of sync says so and resyncs by itself") {
    Table t;
    (void)t.server.dispatch("alice", counter::increment(3));
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    REQUIRE(bob.sync_status() == krmx::SyncStatus::synced);
    std::vector<std::pair<krmx::SyncStatus, std::string>> seen;
    const auto watch = bob.on_sync([&](krmx::SyncStatus status, std::string_view reason) {
        seen.emplace_back(status, std::string{reason});
    });
    const auto forge = [&](std::string text) {
        t.hub.server().send("bob", std::move(text));
        t.hub.run_until_idle();
    };
    const auto forged_append = [](std::size_t position, const std::string& event) {
        return krmx::detail::append_message("counter", "zed", event, position, std::nullopt);
    };

    SECTION("a gap") {
        forge(forged_append(5, R"({"type":"increment","payload":100})"));
        CHECK(bob.statistics().resyncs == 1);
    }
    SECTION("a repeated position with another event") {
        forge(forged_append(0, R"({"type":"increment","payload":100})"));
        CHECK(bob.statistics().resyncs == 1);
    }
    SECTION("a history that does not start where it should") {
        forge(krmx::detail::history_message("counter", 4, 1, [](std::size_t) {
            return std::pair<std::string_view, std::string_view>{"zed", R"({"type":"claim"})"};
        }));
        CHECK(bob.statistics().resyncs == 1);
    }
    SECTION("an event the model cannot read") {
        forge(forged_append(1, R"({"type":"explode"})"));
        CHECK(bob.statistics().resyncs == 1);
    }
    REQUIRE(seen.size() >= 2);
    CHECK(seen.front().first == krmx::SyncStatus::resyncing);
    CHECK(!seen.front().second.empty());
    CHECK(seen.back().first == krmx::SyncStatus::synced);
    CHECK(bob.synced());
    (void)t.server.dispatch("alice", counter::increment(1));
    t.hub.run_until_idle();
    CHECK(t.converged());
    CHECK(bob.state().counter == 4);
    CHECK(bob.statistics().resyncs >= 1);
}

TEST_CASE("a client whose model cannot read the server's stream says it has diverged, once") {
    // The server runs a newer model with an event type this client does not know.
    static constexpr krmx::EventType<> bonus{"bonus"};
    const auto newer = krmx::StreamModel<Counter>{}
                           .when(counter::increment, [](Counter& s, std::string_view, int n) { s.counter += n; })
                           .when(bonus, [](Counter& s, std::string_view) { s.counter += 100; });
    krmx::testing::Hub hub;
    krmx::StreamDomain server{hub, "counter", newer};
    auto& connection = hub.connect("bob");
    krmx::StreamClient bob{connection, "counter", counter::model()};
    std::vector<krmx::SyncStatus> seen;
    const auto watch = bob.on_sync([&](krmx::SyncStatus status, std::string_view) { seen.push_back(status); });
    connection.link();
    hub.run_until_idle();
    (void)server.dispatch(krmx::server_dispatcher, bonus());
    hub.run_until_idle();
    CHECK(bob.sync_status() == krmx::SyncStatus::diverged);
    CHECK(!bob.synced());
    CHECK(std::count(seen.begin(), seen.end(), krmx::SyncStatus::diverged) == 1);
    CHECK(bob.statistics().resyncs == 1);  // one full resync was tried, then it gave up
}

TEST_CASE("a client that asks for history resumes after a relink with only what it missed") {
    Table t{{.history_on_link = false}, {.request_history = true}};
    auto& bob = t.join("bob");
    t.hub.run_until_idle();
    for (int i = 0; i < 5; ++i) (void)t.server.dispatch("alice", counter::increment(1));
    t.hub.run_until_idle();
    REQUIRE(bob.confirmed_size() == 5);
    t.hub.client("bob").unlink();
    t.hub.run_until_idle();
    for (int i = 0; i < 3; ++i) (void)t.server.dispatch("alice", counter::increment(1));
    t.hub.client("bob").clear_received();
    t.hub.client("bob").link();
    t.hub.run_until_idle();
    CHECK(bob.synced());
    CHECK(t.converged());
    std::size_t history_events = 0;
    for (const auto& message : parsed(t.hub.client("bob"))) {
        if (message["type"] == "stream/history") history_events += message["payload"]["events"].size();
    }
    CHECK(history_events <= 4);  // the 3 it missed (and at most one it had, to check the join)
}

TEST_CASE("the claimable counter refuses an increment past the range of its counter") {
    Table t;
    auto& mallory = t.raw("mallory");
    mallory.send(append(R"({"type":"increment","payload":2147483647})", 1));
    mallory.send(append(R"({"type":"increment","payload":2147483647})", 2));
    mallory.send(append(R"({"type":"increment","payload":-2147483648})", 3));
    mallory.send(append(R"({"type":"increment","payload":-2147483648})", 4));
    mallory.send(append(R"({"type":"increment","payload":-2147483648})", 5));
    t.hub.run_until_idle();
    CHECK(t.server.state().counter == -1);
    CHECK(t.server.size() == 2);
    CHECK(json::parse(mallory.received().at(1))["payload"]["reason"] == "counter would overflow");
}

}  // namespace hostile_input_tests

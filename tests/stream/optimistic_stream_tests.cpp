// OptimisticStream: the client's view. Costs are pinned down by counters(), never by timings.
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <krmx/stream/optimistic_stream.hpp>
#include <krmx/stream/stream.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"

using krmx::Outcome;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct Invalidation {
    std::uint64_t id;
    json event;
    std::string reason;
};

// An OptimisticStream for `user` on the claimable counter, with a manual clock and recorded notifications.
struct Client {
    krmx::ManualClock clock;
    krmx::OptimisticStream<Counter> stream;
    std::vector<Invalidation> invalidations;
    int changes = 0;
    int confirmed_changes = 0;
    krmx::Subscription s1, s2, s3;

    explicit Client(std::string user, double seconds = 10.0)
        : stream(counter::model(), {.optimistic_seconds = seconds}, clock) {
        stream.set_user(std::move(user));
        s1 = stream.on_change([this](const Counter&) { ++changes; });
        s2 = stream.on_confirmed_change([this](const Counter&) { ++confirmed_changes; });
        s3 = stream.on_invalidated([this](std::uint64_t id, const json& event, std::string_view reason) {
            invalidations.push_back({id, event, std::string{reason}});
        });
    }
};

std::vector<std::uint64_t> pending_ids(const krmx::OptimisticStream<Counter>& stream) {
    std::vector<std::uint64_t> ids;
    for (const auto& p : stream.pending()) ids.push_back(p.id);
    return ids;
}

}  // namespace

TEST_CASE("an own event confirmed in order costs one application and no rebuild") {
    Client c{"alice"};
    auto first = c.stream.dispatch(counter::increment(3));
    REQUIRE(first);
    CHECK(first.id == 1u);
    CHECK(first.event.dump() == R"({"payload":3,"type":"increment"})");
    CHECK(first.result.position() == 0u);
    auto second = c.stream.dispatch(counter::claim());
    REQUIRE(second);
    CHECK(second.id == 2u);
    CHECK(second.event.dump() == R"({"type":"claim"})");
    CHECK(c.stream.state() == Counter{3, "alice"});
    CHECK(c.stream.confirmed_state() == Counter{});
    CHECK(c.stream.pending_count() == 2);
    CHECK(c.changes == 2);

    const auto before = c.stream.counters();
    auto r = c.stream.receive("alice", first.event, 0, first.id);
    CHECK(r.accepted());
    CHECK(r.position() == 0u);
    CHECK(c.stream.counters().handler_calls - before.handler_calls == 1);
    CHECK(c.stream.counters().rebuilds == before.rebuilds);
    CHECK(c.stream.counters().confirmed_in_place == 1);
    CHECK(c.stream.confirmed_state() == Counter{3, std::nullopt});
    CHECK(c.stream.state() == Counter{3, "alice"});
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{2});
    CHECK(c.confirmed_changes == 1);
    CHECK(c.changes == 2);  // the optimistic state did not change

    CHECK(c.stream.receive("alice", counter::claim(), 1, second.id).accepted());
    CHECK(c.stream.counters().handler_calls - before.handler_calls == 2);
    CHECK(c.stream.counters().rebuilds == 0);
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.stream.confirmed_state() == Counter{3, "alice"});
    CHECK(c.stream.state() == c.stream.confirmed_state());
    CHECK(c.stream.confirmed_size() == 2);
    CHECK(c.stream.confirmed_log().size() == 2);
    CHECK(c.stream.confirmed_log()[1].dispatcher() == "alice");
    CHECK(c.invalidations.empty());
}

TEST_CASE("confirming the oldest of 100 pending events never replays the others") {
    Client c{"alice"};
    std::vector<krmx::OptimisticDispatch> sent;
    for (int i = 0; i < 100; ++i) sent.push_back(c.stream.dispatch(counter::increment(1)));
    const auto before = c.stream.counters();
    for (std::size_t i = 0; i < sent.size(); ++i) {
        REQUIRE(c.stream.receive("alice", sent[i].event, i, sent[i].id).accepted());
    }
    CHECK(c.stream.counters().handler_calls - before.handler_calls == 100);
    CHECK(c.stream.counters().rebuilds == 0);
    CHECK(c.stream.counters().replayed_events == 0);
    CHECK(c.stream.state() == Counter{100, std::nullopt});
    CHECK(c.stream.confirmed_state() == Counter{100, std::nullopt});
}

TEST_CASE("a foreign event before your confirmation rebuilds once and the result is right") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(2));
    auto b = c.stream.dispatch(counter::increment(5));
    REQUIRE((a && b));

    const auto before = c.stream.counters();
    CHECK(c.stream.receive("bob", counter::increment(10), 0).accepted());
    CHECK(c.stream.counters().rebuilds - before.rebuilds == 1);
    // one application on the confirmed state, then the two pending events replayed on top of it
    CHECK(c.stream.counters().handler_calls - before.handler_calls == 3);
    CHECK(c.stream.counters().replayed_events - before.replayed_events == 2);
    CHECK(c.stream.confirmed_state() == Counter{10, std::nullopt});
    CHECK(c.stream.state() == Counter{17, std::nullopt});
    CHECK(c.stream.pending_count() == 2);
    CHECK(c.changes == 3);
    CHECK(c.confirmed_changes == 1);

    // Own events after the foreign one take the cheap path again.
    const auto mid = c.stream.counters();
    CHECK(c.stream.receive("alice", a.event, 1, a.id).accepted());
    CHECK(c.stream.receive("alice", b.event, 2, b.id).accepted());
    CHECK(c.stream.counters().handler_calls - mid.handler_calls == 2);
    CHECK(c.stream.counters().rebuilds == mid.rebuilds);
    CHECK(c.stream.state() == Counter{17, std::nullopt});
    CHECK(c.stream.state() == c.stream.confirmed_state());
}

TEST_CASE("a pending event that no longer applies is skipped but stays pending until the server decides") {
    Client c{"alice"};
    auto inc = c.stream.dispatch(counter::increment(4));
    REQUIRE(inc);
    CHECK(c.stream.receive("bob", counter::claim(), 0).accepted());  // bob claimed first
    CHECK(c.stream.state() == Counter{0, "bob"});
    REQUIRE(c.stream.pending_count() == 1);
    CHECK_FALSE(c.stream.pending()[0].applies);
    CHECK(c.invalidations.empty());

    // bob releases: at the next rebuild alice's increment applies again.
    CHECK(c.stream.receive("bob", counter::release(), 1).accepted());
    CHECK(c.stream.pending()[0].applies);
    CHECK(c.stream.state() == Counter{4, std::nullopt});

    // Dropping a skipped event costs no rebuild: it changed nothing.
    CHECK(c.stream.receive("bob", counter::claim(), 2).accepted());
    const auto rebuilds = c.stream.counters().rebuilds;
    CHECK(c.stream.invalidate(*inc.id, "claimed by someone else"));
    CHECK(c.stream.counters().rebuilds == rebuilds);
    CHECK(c.stream.state() == Counter{0, "bob"});
    REQUIRE(c.invalidations.size() == 1);
    CHECK(c.invalidations[0].reason == "claimed by someone else");
}

TEST_CASE("invalidate removes exactly that event and reports it") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    auto b = c.stream.dispatch(counter::increment(2));
    auto d = c.stream.dispatch(counter::increment(4));
    REQUIRE((a && b && d));
    const auto before = c.stream.counters();
    CHECK(c.stream.invalidate(*b.id, "claimed by someone else"));
    CHECK(c.stream.counters().rebuilds - before.rebuilds == 1);
    CHECK(c.stream.state() == Counter{5, std::nullopt});
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{*a.id, *d.id});
    REQUIRE(c.invalidations.size() == 1);
    CHECK(c.invalidations[0].id == *b.id);
    CHECK(c.invalidations[0].event == json::parse(R"({"type":"increment","payload":2})"));
    CHECK(c.invalidations[0].reason == "claimed by someone else");

    CHECK_FALSE(c.stream.invalidate(*b.id, "again"));
    CHECK_FALSE(c.stream.invalidate(999, "never dispatched"));
    CHECK(c.invalidations.size() == 1);

    // The rest is still confirmed in place.
    CHECK(c.stream.receive("alice", a.event, 0, a.id).accepted());
    CHECK(c.stream.receive("alice", d.event, 1, d.id).accepted());
    CHECK(c.stream.counters().confirmed_in_place == 2);
    CHECK(c.stream.state() == Counter{5, std::nullopt});
}

TEST_CASE("several identical pending events are confirmed one at a time, oldest first") {
    Client c{"alice"};
    for (int i = 0; i < 3; ++i) REQUIRE(c.stream.dispatch(counter::increment(1)));
    CHECK(c.stream.state().counter == 3);
    const auto before = c.stream.counters();
    for (std::size_t i = 0; i < 3; ++i) {
        // Without an id: matched by dispatcher and event equality, the oldest first.
        CHECK(c.stream.receive("alice", json::parse(R"({"type":"increment","payload":1})"), i).accepted());
        CHECK(c.stream.pending_count() == 2 - i);
        CHECK(c.stream.confirmed_state().counter == static_cast<int>(i) + 1);
        CHECK(c.stream.state().counter == 3);
        if (c.stream.pending_count() > 0) CHECK(c.stream.pending()[0].id == i + 2);
    }
    CHECK(c.stream.counters().handler_calls - before.handler_calls == 3);
    CHECK(c.stream.counters().rebuilds == before.rebuilds);
}

TEST_CASE("without an id, an own event equal to a later pending one confirms that one") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    auto b = c.stream.dispatch(counter::increment(2));
    REQUIRE((a && b));
    CHECK(c.stream.receive("alice", counter::increment(2), 0).accepted());
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{*a.id});
    CHECK(c.stream.counters().rebuilds == 1);
    CHECK(c.stream.state() == Counter{3, std::nullopt});
}

TEST_CASE("another user's echoed id or equal event does not confirm a local pending event") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    REQUIRE(a);
    CHECK(c.stream.receive("bob", a.event, 0, a.id).accepted());  // bob's id 1, bob's increment(1)
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{*a.id});
    CHECK(c.stream.state() == Counter{2, std::nullopt});
    CHECK(c.stream.confirmed_state() == Counter{1, std::nullopt});
}

TEST_CASE("an echoed id whose event differs from the pending one is confirmed with a rebuild") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    REQUIRE(a);
    CHECK(c.stream.receive("alice", counter::increment(7), 0, a.id).accepted());
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.stream.counters().rebuilds == 1);
    CHECK(c.stream.state() == Counter{7, std::nullopt});
}

TEST_CASE("a foreign event with nothing pending costs two applications and no copy") {
    Client c{"alice"};
    CHECK(c.stream.receive("bob", counter::increment(2), 0).accepted());
    CHECK(c.stream.counters().handler_calls == 2);
    CHECK(c.stream.counters().rebuilds == 0);
    CHECK(c.stream.state() == Counter{2, std::nullopt});
    CHECK(c.stream.confirmed_state() == Counter{2, std::nullopt});
    CHECK(c.changes == 1);
    CHECK(c.confirmed_changes == 1);
}

TEST_CASE("a locally refused event is not queued and not to be sent") {
    Client c{"alice"};
    CHECK(c.stream.receive("bob", counter::claim(), 0).accepted());
    const int changes = c.changes;
    auto r = c.stream.dispatch(counter::increment(1));
    CHECK_FALSE(r);
    CHECK_FALSE(r.id.has_value());
    CHECK(r.result.outcome() == Outcome::rejected);
    CHECK(r.result.reason() == "claimed by someone else");
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.changes == changes);

    auto bad = c.stream.dispatch(json::parse(R"({"type":"increment","payload":"3"})"));
    CHECK(bad.result.outcome() == Outcome::invalid_payload);
    auto unknown = c.stream.dispatch(json::parse(R"({"type":"decrement","payload":1})"));
    CHECK(unknown.result.outcome() == Outcome::unknown_type);
    CHECK(c.stream.pending_count() == 0);

    // The next accepted one still gets id 1: refusals use no ids.
    CHECK(c.stream.receive("bob", counter::release(), 1).accepted());
    CHECK(c.stream.dispatch(counter::increment(1)).id == 1u);
}

TEST_CASE("an event dispatched as JSON is sent exactly as given") {
    Client c{"alice"};
    const auto event = json::parse(R"({"type":"increment","payload":3})");
    auto r = c.stream.dispatch(event);
    REQUIRE(r);
    CHECK(r.event == event);
    CHECK(c.stream.state().counter == 3);
    CHECK(c.stream.pending()[0].event == event);
}

TEST_CASE("a server event out of order is refused and changes nothing") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    auto r = c.stream.receive("alice", a.event, 1, a.id);
    CHECK(r.outcome() == Outcome::malformed);
    CHECK(r.reason() == "out of order: expected position 0, got 1");
    CHECK(c.stream.confirmed_size() == 0);
    CHECK(c.stream.pending_count() == 1);
    CHECK(c.stream.counters().handler_calls == 1);
    CHECK(c.stream.receive("bob", counter::increment(1), 0).accepted());
    CHECK(c.stream.receive_text("bob", R"({"type":"increment","payload":1})", 0).outcome() ==
          Outcome::malformed);
    CHECK(c.stream.receive_text("bob", R"({"type":"increment","payload":1})", 1).accepted());
    CHECK(c.stream.state().counter == 3);
}

TEST_CASE("a server event the local model refuses is counted as divergent, never silently eaten") {
    Client c{"alice"};
    CHECK(c.stream.receive("bob", counter::claim(), 0).accepted());

    auto unknown = c.stream.receive("bob", json::parse(R"({"type":"decrement","payload":1})"), 1);
    CHECK(unknown.outcome() == Outcome::unknown_type);
    CHECK(unknown.reason() == "diverged from the server: unknown event type 'decrement'");
    CHECK(c.stream.counters().divergent == 1);
    CHECK(c.stream.confirmed_size() == 2);  // the position is consumed

    // The server says alice incremented; this client's model thinks bob holds the claim.
    auto refused = c.stream.receive("alice", counter::increment(1), 2);
    CHECK(refused.outcome() == Outcome::rejected);
    CHECK(refused.reason() == "diverged from the server: claimed by someone else");
    CHECK(c.stream.counters().divergent == 2);
    CHECK(c.stream.confirmed_size() == 3);
    CHECK(c.stream.confirmed_state() == Counter{0, "bob"});
    CHECK(c.stream.confirmed_log().size() == 1);
    CHECK(c.stream.receive("bob", counter::increment(2), 3).accepted());
    CHECK(c.stream.state() == Counter{2, "bob"});
}

TEST_CASE("a divergent confirmation of an own event removes it from the queue") {
    Client c{"alice"};
    auto a = c.stream.dispatch(counter::increment(1));
    REQUIRE(a);
    auto r = c.stream.receive("alice", json::parse(R"({"type":"increment","payload":"x"})"), 0, a.id);
    CHECK(r.outcome() == Outcome::invalid_payload);
    CHECK(c.stream.counters().divergent == 1);
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.stream.state() == Counter{});
    CHECK(c.invalidations.empty());
}

TEST_CASE("pending events expire after optimistic_seconds on the manual clock") {
    Client c{"alice", 10.0};
    auto a = c.stream.dispatch(counter::increment(1));
    c.clock.advance(4s);
    auto b = c.stream.dispatch(counter::increment(2));
    REQUIRE((a && b));
    REQUIRE(c.stream.pending().size() == 2);
    CHECK(c.stream.next_deadline() == c.stream.pending()[0].deadline);
    CHECK(c.stream.pending()[1].deadline - c.stream.pending()[0].deadline == 4s);

    c.clock.advance(6s);  // a is exactly 10 s old: not older than optimistic_seconds yet
    CHECK(c.stream.flush_expired() == 0);
    c.clock.advance(1ns);
    const auto rebuilds = c.stream.counters().rebuilds;
    CHECK(c.stream.flush_expired() == 1);
    CHECK(c.stream.counters().rebuilds - rebuilds == 1);
    CHECK(c.stream.counters().expired == 1);
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{*b.id});
    CHECK(c.stream.state().counter == 2);
    REQUIRE(c.invalidations.size() == 1);
    CHECK(c.invalidations[0].id == *a.id);
    CHECK(c.invalidations[0].reason == "expired after 10 s");
    CHECK(c.invalidations[0].event == a.event);

    // Touching the stream expires too: a late confirmation of `a` arrives after b expired.
    c.clock.advance(5s);
    CHECK(c.stream.receive("alice", a.event, 0, a.id).accepted());  // a is foreign now
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.invalidations.size() == 2);
    CHECK(c.invalidations[1].id == *b.id);
    CHECK(c.stream.state() == Counter{1, std::nullopt});
    CHECK(c.stream.state() == c.stream.confirmed_state());
    CHECK_FALSE(c.stream.next_deadline().has_value());
}

TEST_CASE("expiry is reported with the configured seconds and copes with a clock set back") {
    Client c{"alice", 2.5};
    auto a = c.stream.dispatch(counter::increment(1));
    c.clock.advance(-10s);
    auto b = c.stream.dispatch(counter::increment(1));  // deadline before a's
    REQUIRE((a && b));
    c.clock.advance(3s);  // past b's deadline, before a's
    CHECK(c.stream.flush_expired() == 1);
    CHECK(pending_ids(c.stream) == std::vector<std::uint64_t>{*a.id});
    CHECK(c.invalidations.at(0).reason == "expired after 2.5 s");
}

TEST_CASE("flush drops every pending event and reset returns to the initial state") {
    Client c{"alice"};
    CHECK(c.stream.receive("bob", counter::increment(5), 0).accepted());
    auto a = c.stream.dispatch(counter::increment(1));
    auto b = c.stream.dispatch(counter::claim());
    REQUIRE((a && b));
    c.stream.flush();
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.stream.state() == Counter{5, std::nullopt});
    CHECK(c.stream.confirmed_size() == 1);
    REQUIRE(c.invalidations.size() == 2);
    CHECK(c.invalidations[0].reason == "flushed");
    CHECK(c.invalidations[1].id == *b.id);

    auto d = c.stream.dispatch(counter::increment(2));
    REQUIRE(d);
    c.stream.reset();
    CHECK(c.stream.state() == Counter{});
    CHECK(c.stream.confirmed_state() == Counter{});
    CHECK(c.stream.confirmed_size() == 0);
    CHECK(c.stream.confirmed_log().empty());
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.invalidations.back().reason == "reset");
    CHECK(c.stream.user() == "alice");
    // Ids keep increasing across a reset, and the history replays from position 0.
    CHECK(c.stream.dispatch(counter::increment(1)).id == *d.id + 1);
    CHECK(c.stream.receive("bob", counter::increment(5), 0).accepted());
    CHECK(c.stream.state() == Counter{6, std::nullopt});
}

TEST_CASE("changing the user drops the pending events") {
    Client c{"alice"};
    REQUIRE(c.stream.dispatch(counter::claim()));
    c.stream.set_user("alice");  // same name: nothing happens
    CHECK(c.stream.pending_count() == 1);
    c.stream.set_user("bob");
    CHECK(c.stream.pending_count() == 0);
    CHECK(c.stream.state() == Counter{});
    REQUIRE(c.invalidations.size() == 1);
    CHECK(c.invalidations[0].reason == "user changed");
    REQUIRE(c.stream.dispatch(counter::claim()));
    CHECK(c.stream.state().claim == "bob");
}

TEST_CASE("notifications come after the state is consistent, and unsubscribing stops them") {
    Client c{"alice"};
    std::vector<std::string> order;
    auto a = c.stream.dispatch(counter::increment(1));
    REQUIRE(a);
    auto s1 = c.stream.on_invalidated([&](std::uint64_t, const json&, std::string_view) {
        order.push_back("invalidated");
        CHECK(c.stream.state() == c.stream.confirmed_state());  // already rebuilt: nothing else is pending
    });
    auto s2 = c.stream.on_confirmed_change([&](const Counter&) { order.push_back("confirmed"); });
    auto s3 = c.stream.on_change([&](const Counter& s) {
        order.push_back("change");
        CHECK(&s == &c.stream.state());
    });
    CHECK(c.stream.invalidate(*a.id, "no"));
    CHECK(order == std::vector<std::string>{"invalidated", "change"});

    order.clear();
    auto b = c.stream.dispatch(counter::increment(1));
    c.clock.advance(11s);
    CHECK(c.stream.receive("bob", counter::increment(1), 0).accepted());
    CHECK(order == std::vector<std::string>{"change", "invalidated", "confirmed", "change"});

    order.clear();
    s1.cancel();
    s2 = krmx::Subscription{};
    { auto gone = std::move(s3); }
    REQUIRE(c.stream.dispatch(counter::increment(1)));
    c.stream.flush();
    CHECK(order.empty());
    (void)b;
}

TEST_CASE("a subscriber that throws does not stop the stream") {
    Client c{"alice"};
    auto s = c.stream.on_change([](const Counter&) { throw std::runtime_error("ui bug"); });
    REQUIRE(c.stream.dispatch(counter::increment(1)));
    CHECK(c.stream.subscriber_errors() == 1);
    CHECK(c.stream.state().counter == 1);
    CHECK(c.changes == 1);
}

namespace {

// A model whose handler mutates the state and then refuses (the worst case: the stream must undo it).
struct Bag {
    std::vector<int> items;
    friend bool operator==(const Bag&, const Bag&) = default;
};
inline constexpr krmx::EventType<int> put{"put"};
const krmx::StreamModel<Bag>& bag_model() {
    static const auto m = krmx::StreamModel<Bag>{}.when(put, [](Bag& s, std::string_view, int n) {
        s.items.push_back(n);
        if (n < 0) throw krmx::Rejected{"negative"};
        if (s.items.size() > 3) throw krmx::Rejected{"full"};
    });
    return m;
}

}  // namespace

TEST_CASE("a handler that writes and then refuses is undone on the optimistic state") {
    krmx::ManualClock clock;
    krmx::OptimisticStream<Bag> s{bag_model(), {}, clock};
    s.set_user("alice");
    REQUIRE(s.dispatch(put(1)));
    auto r = s.dispatch(put(-1));
    CHECK(r.result.reason() == "negative");
    CHECK(s.state() == Bag{{1}});
    REQUIRE(s.dispatch(put(2)));
    REQUIRE(s.dispatch(put(3)));
    CHECK(s.state() == Bag{{1, 2, 3}});

    // A foreign put fills the bag: the last pending put no longer fits and is skipped, its write undone.
    CHECK(s.receive("bob", put(9), 0).accepted());
    CHECK(s.state() == Bag{{9, 1, 2}});
    REQUIRE(s.pending().size() == 3);
    CHECK_FALSE(s.pending()[2].applies);

    // A divergent server event that writes before refusing leaves the confirmed state as it was.
    auto d = s.receive("bob", put(-5), 1);
    CHECK(d.outcome() == Outcome::rejected);
    CHECK(s.counters().rollbacks == 1);
    CHECK(s.confirmed_state() == Bag{{9}});
    CHECK(s.state() == Bag{{9, 1, 2}});
}

// ---------------------------------------------------------------------------------------------------
// Randomized convergence: several clients dispatch optimistically over links with random delays, a
// server stream decides in some order, some events are refused (locally or by the server), some
// confirmations arrive late or expire, some uploads are lost. When everything is settled every client's
// optimistic state equals the server's state and a fresh replay of the server's log.
// ---------------------------------------------------------------------------------------------------
namespace {

struct Upload {
    std::uint64_t id;
    json event;
};
struct Download {
    bool invalidate;
    std::string dispatcher;
    json event;
    std::size_t position;
    std::optional<std::uint64_t> id;
    std::string reason;
};

struct SimClient {
    std::string name;
    krmx::OptimisticStream<Counter> stream;
    std::deque<Upload> up;
    std::deque<Download> down;
    bool echo_ids;
};

// What the optimistic state must be: a fresh replay of the confirmed log plus the pending events that
// apply, each dispatched as the user.
Counter expected_optimistic(const SimClient& c) {
    krmx::Stream<Counter> replay{counter::model()};
    for (const auto entry : c.stream.confirmed_log())
        (void)replay.dispatch(entry.dispatcher(), entry.event_json());
    for (const auto& p : c.stream.pending()) (void)replay.dispatch(c.name, p.event);
    return replay.state();
}

json random_event(std::mt19937& rng) {
    switch (std::uniform_int_distribution<int>{0, 9}(rng)) {
        case 0:
            return json::parse(R"({"type":"claim"})");
        case 1:
            return json::parse(R"({"type":"release"})");
        case 2:
            return json::parse(R"({"type":"increment","payload":"x"})");  // refused locally
        default:
            return {{"type", "increment"}, {"payload", std::uniform_int_distribution<int>{1, 3}(rng)}};
    }
}

}  // namespace

TEST_CASE("randomized: every client converges to the server's state once everything is settled") {
    constexpr int runs = 400;
    constexpr int steps = 160;
    std::uint64_t fast_confirms = 0, rebuilds = 0, expired = 0, server_refusals = 0, local_refusals = 0;
    for (int seed = 1; seed <= runs; ++seed) {
        INFO("seed " << seed);
        std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
        auto chance = [&](double p) {
            return std::bernoulli_distribution{p}(rng);
        };
        krmx::ManualClock clock;
        krmx::Stream<Counter> server{counter::model()};
        std::deque<SimClient> clients;
        const int n = std::uniform_int_distribution<int>{2, 4}(rng);
        for (int i = 0; i < n; ++i) {
            clients.push_back(
                SimClient{"user" + std::to_string(i),
                          krmx::OptimisticStream<Counter>{counter::model(), {.optimistic_seconds = 5}, clock},
                          {},
                          {},
                          chance(0.7)});
            clients.back().stream.set_user(clients.back().name);
        }
        auto broadcast = [&](const std::string& dispatcher, const json& event,
                             std::optional<std::uint64_t> id) {
            const std::size_t position = server.size() - 1;
            for (auto& c : clients) c.down.push_back({false, dispatcher, event, position, id, {}});
        };
        auto deliver_up = [&](SimClient& c) {
            Upload u = std::move(c.up.front());
            c.up.pop_front();
            auto r = server.dispatch(c.name, u.event);
            if (r) {
                broadcast(c.name, u.event, c.echo_ids ? std::optional<std::uint64_t>{u.id} : std::nullopt);
            } else {
                ++server_refusals;
                c.down.push_back({true, {}, u.event, 0, u.id, std::string{r.reason()}});
            }
        };
        auto deliver_down = [&](SimClient& c) {
            Download d = std::move(c.down.front());
            c.down.pop_front();
            if (d.invalidate) {
                (void)c.stream.invalidate(*d.id, d.reason);  // false when it expired already
            } else {
                auto r = c.stream.receive(d.dispatcher, d.event, d.position, d.id);
                if (!r) FAIL("receive refused: " << r.reason());
            }
        };

        for (int step = 0; step < steps; ++step) {
            auto& c = clients[std::uniform_int_distribution<std::size_t>{0, clients.size() - 1}(rng)];
            const int action = std::uniform_int_distribution<int>{0, 9}(rng);
            if (action <= 2) {
                auto sent = c.stream.dispatch(random_event(rng));
                if (!sent) {
                    ++local_refusals;
                } else if (!chance(0.05)) {  // 5% of uploads are lost and must expire
                    c.up.push_back({*sent.id, sent.event});
                }
            } else if (action <= 4) {
                if (!c.up.empty()) deliver_up(c);
            } else if (action <= 7) {
                if (!c.down.empty()) deliver_down(c);
            } else if (action == 8) {
                clock.advance(std::chrono::milliseconds{std::uniform_int_distribution<int>{0, 2500}(rng)});
                if (chance(0.5)) (void)c.stream.flush_expired();
            } else if (chance(0.3)) {
                if (server.dispatch(krmx::server_dispatcher, counter::increment(10))) {
                    broadcast(std::string{krmx::server_dispatcher}, counter::increment(10).to_json(),
                              std::nullopt);
                }
            }
            if (step % 8 == 0) {
                for (const auto& sc : clients) {
                    if (sc.stream.state() != expected_optimistic(sc))
                        FAIL("optimistic != confirmed + pending");
                }
            }
        }

        // Settle: every upload reaches the server, every download its client, then the rest expires.
        for (auto& c : clients) {
            while (!c.up.empty()) deliver_up(c);
        }
        for (auto& c : clients) {
            while (!c.down.empty()) deliver_down(c);
        }
        clock.advance(6s);
        krmx::Stream<Counter> fresh{counter::model()};
        for (const auto entry : server.log()) REQUIRE(fresh.dispatch(entry.dispatcher(), entry.event_json()));
        REQUIRE(fresh.state() == server.state());
        for (auto& c : clients) {
            INFO(c.name);
            (void)c.stream.flush_expired();
            CHECK(c.stream.pending_count() == 0);
            CHECK(c.stream.state() == server.state());
            CHECK(c.stream.confirmed_state() == server.state());
            CHECK(c.stream.state() == fresh.state());
            CHECK(c.stream.confirmed_size() == server.size());
            CHECK(c.stream.counters().divergent == 0);
            fast_confirms += c.stream.counters().confirmed_in_place;
            rebuilds += c.stream.counters().rebuilds;
            expired += c.stream.counters().expired;
        }
    }
    // The scenario exercised every path.
    CHECK(fast_confirms > 0);
    CHECK(rebuilds > 0);
    CHECK(expired > 0);
    CHECK(server_refusals > 0);
    CHECK(local_refusals > 0);
}

#include <string>

#include <krmx/stream/stream.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"

TEST_CASE("registering an event type twice is an error at registration") {
    krmx::StreamModel<Counter> model;
    model.when(counter::increment, [](Counter& s, std::string_view, int n) { s.counter += n; });
    CHECK_THROWS_WITH(model.when(counter::increment, [](Counter&, std::string_view, int) {}),
                      "krmx::StreamModel::when: event type 'increment' is registered twice");
    constexpr krmx::EventType<std::string> same_name{"increment"};
    CHECK_THROWS_AS(model.when(same_name, [](Counter&, std::string_view, const std::string&) {}),
                    krmx::ModelError);
    CHECK(model.size() == 1);
}

TEST_CASE("the TypeScript shape: when<Payload>(name, handler) returns the event creator") {
    krmx::StreamModel<Counter> model;
    const auto increment =
        model.when<int>("increment", [](Counter& s, std::string_view, int n) { s.counter += n; });
    const auto claim = model.when("claim", [](Counter& s, std::string_view by) {
        if (s.claim) throw krmx::Rejected{"already claimed"};
        s.claim = std::string{by};
    });
    krmx::Stream<Counter> stream{model};
    CHECK(stream.dispatch("alice", increment(3)).accepted());
    CHECK(stream.dispatch("alice", claim()).accepted());
    CHECK(stream.dispatch("bob", claim()).reason() == "already claimed");
    CHECK(stream.state() == Counter{3, "alice"});
    CHECK(model.event_types() == std::vector<std::string_view>{"increment", "claim"});
}

TEST_CASE("a stream keeps the model it started with, even when the model changes or goes away") {
    auto stream = [] {
        krmx::StreamModel<Counter> model;
        model.when(counter::increment, [](Counter& s, std::string_view, int n) { s.counter += n; });
        krmx::Stream<Counter> s{model};
        model.when(counter::claim, [](Counter&, std::string_view) {});  // copy on write: s is unaffected
        CHECK(model.handles("claim"));
        return s;
    }();
    CHECK(stream.dispatch("alice", counter::increment(2)).accepted());
    CHECK(stream.dispatch("alice", counter::claim()).outcome() == krmx::Outcome::unknown_type);
}

TEST_CASE("a model starts streams from its initial state, which may be given") {
    const auto model = krmx::StreamModel<Counter>{Counter{100, "server"}}.when(
        counter::increment, [](Counter& s, std::string_view, int n) { s.counter += n; });
    krmx::Stream<Counter> a{model};
    krmx::Stream<Counter> b{model};
    (void)a.dispatch("x", counter::increment(1));
    CHECK(a.state().counter == 101);
    CHECK(b.state().counter == 100);
    CHECK(model.initial_state() == Counter{100, "server"});
}

TEST_CASE("events from the wire find their handler by name, with few event types and with many") {
    // Up to detail::ModelData::linear_search_limit names are compared one by one; beyond it they are hashed.
    for (const int types : {3, 8, 9, 40}) {
        CAPTURE(types);
        krmx::StreamModel<Counter> model;
        for (int t = 0; t < types; ++t) {
            // Names share prefixes and lengths, so a comparison that stops early would pick the wrong one.
            (void)model.when<int>("add" + std::to_string(t),
                                  [t](Counter& s, std::string_view, int n) { s.counter += (t + 1) * n; });
        }
        krmx::Stream<Counter> stream{model};
        int expected = 0;
        for (int t = types - 1; t >= 0; --t) {
            const auto text = R"({"type":"add)" + std::to_string(t) + R"(","payload":1})";
            REQUIRE(stream.dispatch_text("alice", text).accepted());
            REQUIRE(stream.dispatch("alice", nlohmann::json::parse(text)).accepted());
            expected += 2 * (t + 1);
        }
        CHECK(stream.state().counter == expected);
        CHECK(stream.dispatch_text("alice", R"({"type":"add","payload":1})").outcome() ==
              krmx::Outcome::unknown_type);
        CHECK(stream.dispatch_text("alice", R"({"type":"add999","payload":1})").outcome() ==
              krmx::Outcome::unknown_type);
    }
}

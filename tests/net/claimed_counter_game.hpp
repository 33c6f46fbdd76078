#pragma once
// The game both network test programs play over their sockets (plain in websocket_tests.cpp, TLS in
// tls_tests.cpp): two linked players on the claimable counter, a contested claim, and a reconnect that
// rebuilds the loser's stream from the history.
#include <functional>

#include <krmx/net/websocket_client.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"
#include "net_support.hpp"

/// `a` and `b` are connected, not linked. alice claims and counts to 20; bob's +100 is refused (one invalidate);
/// every state agrees with the server's. Then bob's connection drops, `reconnect_b` connects it again, and
/// its stream rebuilds from the history.
inline void play_claimed_counter(ServerThread& t, krmx::StreamDomain<Counter>& server, krmx::net::WebSocketClient& a,
                                 krmx::net::WebSocketClient& b, const std::function<void()>& reconnect_b) {
    krmx::StreamClient<Counter> alice{a, "counter", counter::model()};
    krmx::StreamClient<Counter> bob{b, "counter", counter::model()};
    a.link("alice");
    b.link("bob");
    const auto run_both = [&](auto done) { return run_clients({&a, &b}, done); };
    REQUIRE(run_both([&] { return a.linked() && b.linked(); }));
    (void)alice.dispatch(counter::claim());
    for (int i = 0; i < 20; ++i) (void)alice.dispatch(counter::increment(1));
    (void)bob.dispatch(counter::increment(100));  // refused: alice holds the claim
    REQUIRE(run_both([&] {
        return alice.pending_count() == 0 && bob.pending_count() == 0 && bob.confirmed_size() == 21;
    }));
    CHECK(alice.state().counter == 20);
    CHECK(bob.state() == alice.state());
    CHECK(bob.statistics().invalidated == 1);
    CHECK(alice.statistics().invalidated == 0);
    CHECK(t.on_server([&] { return server.state(); }) == alice.state());

    b.terminate();
    CHECK(bob.confirmed_size() == 0);
    reconnect_b();
    b.link("bob");
    REQUIRE(run_both([&] { return bob.confirmed_size() == 21; }));
    CHECK(bob.state() == alice.state());
}

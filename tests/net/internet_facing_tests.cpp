// krmx::net::internet_facing: every limit of an exposed server is on, and what the caller chose stays.
#include <chrono>

#include <krmx/net/internet_facing.hpp>

#include "catch.hpp"

using namespace std::chrono_literals;

TEST_CASE("internet_facing turns every per-address limit and forgetting on", "[net][abuse]") {
    const krmx::net::WebSocketServerOptions library{};
    // The library's defaults are Krmx's behaviour: nothing per address, nobody forgotten.
    CHECK(library.max_connections_per_address == 0);
    CHECK(library.session.forget_unlinked_after == krmx::Duration::zero());
    CHECK(library.session.max_unlinked_users == 0);
    CHECK(library.session.link_attempts_per_address_per_second == 0);
    CHECK(library.session.new_users_per_address_per_minute == 0);

    const auto o = krmx::net::internet_facing();
    CHECK(o.max_connections_per_address == 16);
    CHECK(o.handshake_timeout == krmx::Duration{5s});
    CHECK(o.max_message_bytes == 64u << 10);
    CHECK(o.max_frames_per_second == 200);
    CHECK(o.max_queued_bytes == library.max_queued_bytes);  // a joiner's history must still fit
    CHECK(o.session.link_deadline == krmx::Duration{15s});
    CHECK(o.session.forget_unlinked_after == krmx::Duration{2min});
    CHECK(o.session.max_unlinked_users == 256);
    CHECK(o.session.link_attempts_per_address_per_second == 5);
    CHECK(o.session.new_users_per_address_per_minute == 20);
    // Nothing else changes: where it listens, what it serves, whom it trusts.
    CHECK(o.address == library.address);
    CHECK(o.port == library.port);
    CHECK(o.allowed_origins.empty());
    CHECK(o.trusted_proxies.empty());
}

TEST_CASE("internet_facing keeps what the caller set", "[net][abuse]") {
    krmx::net::WebSocketServerOptions mine{.port = 8082, .max_connections_per_address = 64,
                                           .trusted_proxies = {"10.0.0.0/8"}};
    mine.session.forget_unlinked_after = 10min;
    mine.session.new_users_per_address_per_minute = 1000;  // a school behind one address
    const auto o = krmx::net::internet_facing(mine);
    CHECK(o.port == 8082);
    CHECK(o.max_connections_per_address == 64);
    CHECK(o.trusted_proxies == std::vector<std::string>{"10.0.0.0/8"});
    CHECK(o.session.forget_unlinked_after == krmx::Duration{10min});
    CHECK(o.session.new_users_per_address_per_minute == 1000);
    CHECK(o.session.link_attempts_per_address_per_second == 5);  // the rest still set
    // A limit is turned off after the call.
    auto off = krmx::net::internet_facing();
    off.max_connections_per_address = 0;
    CHECK(off.max_connections_per_address == 0);
}

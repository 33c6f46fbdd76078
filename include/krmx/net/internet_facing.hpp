#pragma once
// krmx::net::internet_facing: the limits of a WebSocketServer that strangers can reach, in one call.
//
//   krmx::net::WebSocketServer server{krmx::net::internet_facing({.address = "0.0.0.0", .port = 8082})};
//
// The library's own defaults keep Krmx's behaviour (a user is remembered until it leaves; no limits per
// address), which suits a game among friends on a trusted network. Exposed to the internet, one client can
// otherwise spray throw-away usernames (every later player receives all of them on linking), take every
// connection slot from one address, hold memory with sockets it never reads, or be opened by any web page a
// player visits. Each value below is a starting point for a small game; the README's "Exposed to the
// internet" section lists every limit, its default here and in the library, and the counter it is counted in.

#include <chrono>
#include <cstddef>

#include "krmx/net/websocket_server.hpp"

namespace krmx::net {

/// `options` with the limits for a server exposed to the internet. Options the caller set away from the
/// library's defaults are kept: a field is changed only while it still has its library default, so
/// `internet_facing({.max_connections_per_address = 64})` keeps 64. (To keep a library default instead,
/// set the field after the call.)
[[nodiscard]] inline WebSocketServerOptions internet_facing(WebSocketServerOptions options = {}) {
    using namespace std::chrono_literals;
    const WebSocketServerOptions library{};
    const auto set = [](auto& field, const auto& library_default, const auto& value) {
        if (field == library_default) field = value;
    };
    // Sockets: a handful per household (raise it for players behind a carrier-grade NAT), quick handshakes,
    // small frames at a human rate. (max_queued_bytes stays: a user that links receives the domain's whole
    // history in one turn, and must not be taken for a peer that stopped reading.)
    set(options.max_connections_per_address, library.max_connections_per_address, std::size_t{16});
    set(options.handshake_timeout, library.handshake_timeout, Duration{5s});
    set(options.max_message_bytes, library.max_message_bytes, std::size_t{64} << 10);
    set(options.max_frames_per_second, library.max_frames_per_second, std::size_t{200});
    // Session: forget who left without saying so, and budget links and new names per address.
    auto& session = options.session;
    const SessionOptions& lib = library.session;
    set(session.link_deadline, lib.link_deadline, Duration{15s});
    set(session.forget_unlinked_after, lib.forget_unlinked_after, Duration{2min});
    set(session.max_unlinked_users, lib.max_unlinked_users, std::size_t{256});
    set(session.link_attempts_per_address_per_second, lib.link_attempts_per_address_per_second, std::size_t{5});
    set(session.new_users_per_address_per_minute, lib.new_users_per_address_per_minute, std::size_t{20});
    return options;
}

}  // namespace krmx::net

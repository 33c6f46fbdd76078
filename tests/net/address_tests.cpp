// The WebSocket server's view of client addresses (the key per-address limits count by, trusted proxy
// networks, X-Forwarded-For) and of origins, without sockets.
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include <krmx/net/detail/address.hpp>
#include <krmx/net/detail/origin.hpp>

#include "catch.hpp"

namespace address_tests {
namespace {

using krmx::net::detail::IpAddress;
using krmx::net::detail::IpNetwork;

IpAddress ip(const char* text) {
    return boost::asio::ip::make_address(text);
}

std::string key(const char* text) {
    return krmx::net::detail::address_key(ip(text));
}

// The text of an entry as parsed, or "-" when it is no address.
std::string parsed(const char* text) {
    const auto a = krmx::net::detail::parse_address(text);
    return a ? a->to_string() : "-";
}

// The client X-Forwarded-For names when `networks` are the trusted proxies, or "-".
std::string client(const char* header, std::initializer_list<const char*> networks) {
    std::vector<IpNetwork> trusted;
    for (const char* n : networks) trusted.push_back(*IpNetwork::parse(n));
    const auto is_trusted = [&](const IpAddress& a) {
        for (const auto& n : trusted) {
            if (n.contains(a)) return true;
        }
        return false;
    };
    const auto a = krmx::net::detail::forwarded_client(header, is_trusted);
    return a ? a->to_string() : "-";
}

}  // namespace

TEST_CASE("address keys: IPv4 as text, IPv6 by its /64, IPv4-mapped IPv6 as IPv4", "[net][address]") {
    CHECK(key("203.0.113.7") == "203.0.113.7");
    CHECK(key("127.0.0.2") == "127.0.0.2");
    CHECK(key("203.0.113.7") != key("203.0.113.8"));
    CHECK(key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64");
    CHECK(key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    CHECK(key("2001:db8:1:2::1") != key("2001:db8:1:3::1"));
    CHECK(key("::ffff:203.0.113.7") == "203.0.113.7");
    CHECK(key("::ffff:203.0.113.7") == key("203.0.113.7"));
    CHECK(key("::1") == "::/64");
    CHECK(key("fe80::1%1") == "fe80::/64");  // the zone is no part of the key
}

TEST_CASE("X-Forwarded-For entries: bare, bracketed, with ports; anything else is no address",
          "[net][address]") {
    CHECK(parsed("203.0.113.7") == "203.0.113.7");
    CHECK(parsed(" \t203.0.113.7 ") == "203.0.113.7");
    CHECK(parsed("203.0.113.7:4711") == "203.0.113.7");
    CHECK(parsed("2001:db8::1") == "2001:db8::1");
    CHECK(parsed("[2001:db8::1]") == "2001:db8::1");
    CHECK(parsed("[2001:db8::1]:443") == "2001:db8::1");
    CHECK(parsed("::ffff:10.1.2.3") == "10.1.2.3");
    for (const char* bad : {"", " ", "unknown", "_hidden", "203.0.113", "203.0.113.7:", "203.0.113.7:x",
                            "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "example.com"}) {
        INFO(bad);
        CHECK(parsed(bad) == "-");
    }
}

TEST_CASE("trusted proxy networks: addresses and CIDR prefixes, IPv4 and IPv6", "[net][address]") {
    const auto net = [](const char* text) {
        return *IpNetwork::parse(text);
    };
    CHECK(net("10.0.0.0/8").contains(ip("10.255.1.2")));
    CHECK(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
    CHECK(net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));  // a dual-stack socket's IPv4 peer
    CHECK(net("192.168.4.0/22").contains(ip("192.168.7.255")));
    CHECK(!net("192.168.4.0/22").contains(ip("192.168.8.0")));
    CHECK(net("127.0.0.1").contains(ip("127.0.0.1")));
    CHECK(!net("127.0.0.1").contains(ip("127.0.0.2")));
    CHECK(net("::1").contains(ip("::1")));
    CHECK(!net("::1").contains(ip("127.0.0.1")));
    CHECK(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
    CHECK(!net("2001:db8::/32").contains(ip("2001:db9::1")));
    CHECK(net("0.0.0.0/0").contains(ip("198.51.100.1")));
    CHECK(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
    CHECK(net("::/0").contains(ip("2001:db8::1")));
    CHECK(net("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
    CHECK(!net("::ffff:10.0.0.0/104").contains(ip("11.1.2.3")));
    for (const char* bad : {"", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8",
                            "10.0.0.0/-1", "example.com", "10.0.0.0 /8", "fe80::1%1"}) {
        INFO(bad);
        CHECK(!IpNetwork::parse(bad));
    }
}

TEST_CASE("the client behind trusted proxies is the rightmost X-Forwarded-For entry not trusted",
          "[net][address]") {
    const auto proxies = {"10.0.0.0/8", "2001:db8:ff::/48"};
    CHECK(client("203.0.113.7", proxies) == "203.0.113.7");
    // what the client wrote itself is left of its own address, and never looked at
    CHECK(client("198.51.100.1, 203.0.113.7", proxies) == "203.0.113.7");
    CHECK(client("garbage, 203.0.113.7", proxies) == "203.0.113.7");
    // proxies of the chain are passed over
    CHECK(client("198.51.100.1, 203.0.113.7, 10.0.0.2, 10.0.0.3", proxies) == "203.0.113.7");
    CHECK(client("203.0.113.7,[2001:db8:ff::1]:80", proxies) == "203.0.113.7");
    CHECK(client("203.0.113.7, , 10.0.0.2", proxies) == "203.0.113.7");  // empty list elements
    // only proxies: the farthest one
    CHECK(client("10.0.0.2, 10.0.0.3", proxies) == "10.0.0.2");
    // the chain cannot be followed
    CHECK(client("", proxies) == "-");
    CHECK(client(" , ", proxies) == "-");
    CHECK(client("unknown", proxies) == "-");
    CHECK(client("203.0.113.7, unknown, 10.0.0.2", proxies) == "-");
}

TEST_CASE("origins compare scheme and host case-insensitively, ports exactly", "[net][origin]") {
    using krmx::net::detail::OriginPolicy;
    using krmx::net::detail::WebOrigin;
    CHECK(*WebOrigin::parse("HTTPS://Game.Example.com") == *WebOrigin::parse("https://game.example.com:443"));
    CHECK(*WebOrigin::parse("http://x") == *WebOrigin::parse("http://x:80"));
    CHECK(*WebOrigin::parse("http://x") != *WebOrigin::parse("http://x:8080"));
    CHECK(*WebOrigin::parse("http://x") != *WebOrigin::parse("https://x"));
    CHECK(*WebOrigin::parse("http://[::1]:8082") == *WebOrigin::parse("http://[::1]:8082"));
    for (const char* bad : {"", "null", "x", "https://", "https://x/", "https://x/path", "https://x:",
                            "https://x:99999", "https://x:8o", "https://user@x", "://x", "ht tp://x"}) {
        INFO(bad);
        CHECK(!WebOrigin::parse(bad));
    }

    const OriginPolicy listed{{"https://game.example.com", "http://127.0.0.1:8082"}, false};
    CHECK(listed.allows("https://game.example.com", "anything"));
    CHECK(listed.allows("http://127.0.0.1:8082", "anything"));
    CHECK(!listed.allows("http://127.0.0.1", "127.0.0.1"));
    CHECK(!listed.allows("null", "anything"));
    CHECK(!listed.allows("not an origin", "anything"));

    const OriginPolicy same{{}, true};
    CHECK(same.allows("http://127.0.0.1:8082", "127.0.0.1:8082"));
    CHECK(same.allows("https://game.example.com", "Game.Example.com"));
    CHECK(same.allows("http://game.example.com", "game.example.com:80"));
    CHECK(!same.allows("http://game.example.com:8080", "game.example.com"));
    CHECK(!same.allows("http://evil.example.com", "game.example.com"));
    CHECK(!same.allows("ftp://game.example.com", "game.example.com"));
    CHECK(!same.allows("http://game.example.com", ""));
    CHECK(!same.allows("null", "null"));

    CHECK(OriginPolicy{{}, false}.allows("null", "x"));  // no check at all: as before the option existed
    CHECK(!OriginPolicy{{}, false}.checks());
    CHECK(OriginPolicy{{"*"}, false}.allows("https://evil.example.com", "x"));
    CHECK(!OriginPolicy{{"*"}, false}.allows("null", "x"));
    CHECK(OriginPolicy{{"*", "null"}, false}.allows("null", "x"));
    CHECK_THROWS_AS((OriginPolicy{{"https://game.example.com/"}, false}), std::invalid_argument);
}

}  // namespace address_tests

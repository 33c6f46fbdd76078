// The WebSocket server facing the internet, over real loopback sockets: sockets per client address (each
// 127.0.0.x is another client: the whole 127/8 is loopback on Linux), clients behind trusted proxies named
// by X-Forwarded-For, and the Origin check of the upgrade.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>

#include "catch.hpp"
#include "net_support.hpp"
#include "temp_dir.hpp"

namespace websocket_limits_tests {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Fields = std::vector<std::pair<std::string, std::string>>;

// A socket from `source` to the server that sends one HTTP request, a WebSocket upgrade unless told
// otherwise. Every step runs on the peer's own io_context under the stream's deadline: nothing hangs.
class Peer {
  public:
    struct Request {
        Fields fields = {};
        std::string target = "/";
        bool upgrade = true;
    };

    Peer(std::uint16_t port, const std::string& source, const Request& request) : stream_(context_) {
        if (!connect(port, source)) return;
        http::request<http::empty_body> req{http::verb::get, request.target, 11};
        req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
        if (request.upgrade) {
            req.set(http::field::upgrade, "websocket");
            req.set(http::field::connection, "Upgrade");
            req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
            req.set(http::field::sec_websocket_version, "13");
        }
        for (const auto& [name, value] : request.fields) {
            if (beast::iequals(name, "Host")) {
                req.set(http::field::host, value);
            } else {
                req.insert(name, value);  // the same name twice: two fields
            }
        }
        beast::error_code ec;
        stream_.expires_after(10s);
        http::async_write(stream_, req, [&](beast::error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return;
        http::response_parser<http::string_body> parser;
        stream_.expires_after(10s);
        http::async_read(stream_, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return;
        status = static_cast<int>(parser.get().result_int());
        body = parser.get().body();
    }
    Peer(std::uint16_t port, const std::string& source, Fields fields = {})
        : Peer(port, source, Request{std::move(fields)}) {}

    /// Sends `bytes` as they are (no HTTP), and reads until the server closes the socket: what it answered.
    static std::string raw(std::uint16_t port, const std::string& source, const std::string& bytes) {
        Peer peer{Unconnected{}, port, source};
        return peer.send_raw(bytes);
    }

    /// The answer's status: 101 when upgraded (the socket stays open until the Peer goes), 0 when the
    /// server closed the socket without an answer.
    int status = 0;
    std::string body;

  private:
    struct Unconnected {};  // connected, but no request sent yet
    Peer(Unconnected, std::uint16_t port, const std::string& source) : stream_(context_) {
        connect(port, source);
    }

    bool connect(std::uint16_t port, const std::string& source) {
        auto& socket = stream_.socket();
        socket.open(tcp::v4());
        socket.bind(tcp::endpoint{boost::asio::ip::make_address(source), 0});
        beast::error_code ec;
        stream_.expires_after(10s);  // before the operation starts (Beast asserts that)
        stream_.async_connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port},
                              [&](beast::error_code e) { ec = e; });
        run();
        return !ec;
    }

    std::string send_raw(const std::string& bytes) {
        beast::error_code ec;
        if (!bytes.empty()) {
            stream_.expires_after(10s);
            boost::asio::async_write(stream_, boost::asio::buffer(bytes),
                                     [&](beast::error_code e, std::size_t) { ec = e; });
            run();
        }
        std::string answer;
        char chunk[4096];
        while (!ec) {
            stream_.expires_after(10s);
            stream_.async_read_some(boost::asio::buffer(chunk), [&](beast::error_code e, std::size_t n) {
                ec = e;
                answer.append(chunk, n);
            });
            run();
        }
        if (ec == beast::error::timeout) throw std::runtime_error("the server did not close the socket");
        return answer;
    }

    void run() {
        context_.restart();
        context_.run();
        stream_.expires_never();
    }

    boost::asio::io_context context_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
};

krmx::net::WebSocketServerStatistics statistics(ServerThread& t) {
    return t.on_server([&] { return t.server().statistics(); });
}

// Until the server has let go of sockets the peers closed (it learns of it a little later).
void wait_open(ServerThread& t, std::uint64_t open) {
    REQUIRE(eventually([&] { return statistics(t).open == open; }));
}

Fields forwarded(std::initializer_list<const char*> values) {
    Fields fields;
    for (const char* v : values) fields.emplace_back("X-Forwarded-For", v);
    return fields;
}

Fields origin(const std::string& value) {
    return {{"Origin", value}};
}

}  // namespace

TEST_CASE("sockets over max_connections_per_address from one address are closed at accept",
          "[net][websocket][limits]") {
    krmx::net::WebSocketServerOptions options;
    options.max_connections_per_address = 2;
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    auto first = std::make_unique<Peer>(t.port(), "127.0.0.2");
    const Peer second{t.port(), "127.0.0.2"};
    CHECK(first->status == 101);
    CHECK(second.status == 101);
    {
        const Peer third{t.port(), "127.0.0.2"};
        CHECK(third.status == 0);  // closed without an answer: nothing was read
    }
    CHECK(statistics(t).refused_address_full == 1);
    const Peer other{t.port(), "127.0.0.3"};  // another address is not affected
    CHECK(other.status == 101);
    first.reset();
    wait_open(t, 2);
    const Peer again{t.port(), "127.0.0.2"};  // a place is free again
    CHECK(again.status == 101);
    const auto stats = statistics(t);
    CHECK(stats.refused_address_full == 1);
    CHECK(stats.upgrades == 4);
    CHECK(stats.open == 3);
}

TEST_CASE("an address's count is given back however its sockets end", "[net][websocket][limits]") {
    const krmx::testing::TempDir dir;
    std::ofstream{dir.path() / "index.html"} << "<!doctype html>";
    krmx::net::WebSocketServerOptions options;
    options.max_connections_per_address = 1;
    options.static_files = dir.path();
    options.path = "/krmx";
    options.query = {{"v", std::string{"1"}}};
    options.handshake_timeout = 300ms;
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    const std::string a = "127.0.0.4";
    constexpr int rounds = 5;
    for (int i = 0; i < rounds; ++i) {
        INFO("round " << i);
        // a broken request, and one that never comes (handshake_timeout)
        CHECK(Peer::raw(t.port(), a, "NONSENSE\r\n\r\n").find("200") == std::string::npos);
        CHECK(Peer::raw(t.port(), a, "").empty());
        // plain HTTP: a file, a missing file
        CHECK(Peer{t.port(), a, {.target = "/", .upgrade = false}}.status == 200);
        CHECK(Peer{t.port(), a, {.target = "/missing.js", .upgrade = false}}.status == 404);
        // upgrades refused for their path and their origin, or dropped for their query
        CHECK(Peer{t.port(), a, {.target = "/other?v=1"}}.status == 400);
        CHECK(
            Peer{t.port(), a, {.fields = origin("https://evil.example.com"), .target = "/krmx?v=1"}}.status ==
            403);
        CHECK(Peer{t.port(), a, {.target = "/krmx?v=2"}}.status == 101);
        wait_open(t, 0);
        // an upgrade the peer closes; while it is open, another from the same address is refused
        {
            const Peer open{t.port(), a, {.target = "/krmx?v=1"}};
            CHECK(open.status == 101);
            CHECK(Peer{t.port(), a, {.target = "/krmx?v=1"}}.status == 0);
        }
        wait_open(t, 0);
    }
    const Peer last{t.port(), a, {.target = "/krmx?v=1"}};
    CHECK(last.status == 101);
    const auto stats = statistics(t);
    CHECK(stats.handshake_failures == 2 * rounds);
    CHECK(stats.http_files_served == rounds);
    CHECK(stats.http_refused == rounds);
    CHECK(stats.refused_path == rounds);
    CHECK(stats.refused_origin == rounds);
    CHECK(stats.refused_query == rounds);
    CHECK(stats.refused_address_full == rounds);
    CHECK(stats.upgrades == rounds + 1);  // those dropped for their query never counted as upgrades
}

TEST_CASE("a trusted proxy's X-Forwarded-For names the client; anyone else's is ignored",
          "[net][websocket][limits]") {
    krmx::net::WebSocketServerOptions options;
    options.max_connections_per_address = 1;
    options.trusted_proxies = {"127.0.0.5", "10.0.0.0/8"};
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    const std::string proxy = "127.0.0.5";
    std::vector<std::unique_ptr<Peer>> open;
    const auto from_proxy = [&](Fields fields) {
        return open.emplace_back(std::make_unique<Peer>(t.port(), proxy, std::move(fields)))->status;
    };
    // two clients behind the proxy: a place each, although both come from the proxy's address
    CHECK(from_proxy(forwarded({"203.0.113.7"})) == 101);
    CHECK(from_proxy(forwarded({"203.0.113.8"})) == 101);
    // the same clients again: 429. What a client wrote itself (left of its own address) changes nothing,
    // several fields are one list, and proxies of the chain are passed over.
    CHECK(from_proxy(forwarded({"198.51.100.1, 203.0.113.7"})) == 429);
    CHECK(from_proxy(forwarded({"203.0.113.8", "10.1.2.3"})) == 429);
    CHECK(from_proxy(forwarded({"::ffff:203.0.113.7"})) == 429);
    CHECK(open.back()->body == "too many connections from this address");
    // IPv6 clients count by their /64
    CHECK(from_proxy(forwarded({"2001:db8:1:2::1"})) == 101);
    CHECK(from_proxy(forwarded({"[2001:db8:1:2::ffff]:4711"})) == 429);
    CHECK(from_proxy(forwarded({"2001:db8:1:3::1"})) == 101);
    // a missing or unparsable header: the proxy's own address, counted
    CHECK(from_proxy({}) == 101);
    CHECK(from_proxy(forwarded({"unknown"})) == 429);
    auto stats = statistics(t);
    CHECK(stats.forwarded_invalid == 2);
    CHECK(stats.refused_address_full == 5);

    // not a trusted proxy: its header is not looked at, its own address counts (at accept, before the
    // request is read: closed without an answer)
    const Peer direct{t.port(), "127.0.0.6", forwarded({"203.0.113.50"})};
    CHECK(direct.status == 101);
    CHECK(Peer{t.port(), "127.0.0.6", forwarded({"203.0.113.51"})}.status == 0);
    const Peer spoofer{t.port(), "127.0.0.7", forwarded({"203.0.113.7"})};  // 203.0.113.7 is full
    CHECK(spoofer.status == 101);
    stats = statistics(t);
    CHECK(stats.refused_address_full == 6);
    CHECK(stats.forwarded_invalid == 2);

    // a client behind the proxy that leaves gives its place back
    open.front().reset();
    wait_open(t, 6);  // 203.0.113.8, the two /64s, the proxy's own; direct and spoofer
    CHECK(from_proxy(forwarded({"203.0.113.7"})) == 101);
}

TEST_CASE("trusted_proxies and allowed_origins entries that mean nothing are refused at construction",
          "[net][websocket][limits]") {
    for (const char* bad : {"10.0.0.0/33", "example.com", "::1/129", "10.0.0.0/", "10.0.0.0/x", ""}) {
        INFO(bad);
        krmx::net::WebSocketServerOptions options;
        options.trusted_proxies = {"127.0.0.1", bad};
        try {
            krmx::net::WebSocketServer server{options};
            FAIL("no exception");
        } catch (const std::invalid_argument& e) {
            const std::string what = e.what();
            CHECK(what.find("trusted_proxies") != std::string::npos);
            CHECK(what.find(std::string{"\""} + bad + "\"") != std::string::npos);
        }
    }
    for (const char* bad : {"https://game.example.com/", "game.example.com", "https://", "https://x:99999"}) {
        INFO(bad);
        krmx::net::WebSocketServerOptions options;
        options.allowed_origins = {bad};
        CHECK_THROWS_AS(krmx::net::WebSocketServer{options}, std::invalid_argument);
    }
    krmx::net::WebSocketServerOptions good;
    good.trusted_proxies = {"10.0.0.0/8", "::1", "127.0.0.1", "2001:db8::/32", "::ffff:10.0.0.0/104"};
    good.allowed_origins = {"https://game.example.com", "http://127.0.0.1:8082", "null", "*"};
    CHECK_NOTHROW(krmx::net::WebSocketServer{good});
}

TEST_CASE("allowed_origins: listed origins upgrade, others get 403", "[net][websocket][limits][origin]") {
    krmx::net::WebSocketServerOptions options;
    options.allowed_origins = {"https://game.example.com", "http://127.0.0.1:8082"};
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    const auto status = [&](const Fields& fields) {
        return Peer{t.port(), "127.0.0.1", fields}.status;
    };
    CHECK(status(origin("https://game.example.com")) == 101);
    CHECK(status(origin("HTTPS://Game.Example.COM:443")) == 101);
    CHECK(status(origin("http://127.0.0.1:8082")) == 101);
    CHECK(status({}) == 101);  // no Origin: not a browser
    for (const char* refused : {"http://127.0.0.1", "https://evil.example.com", "http://game.example.com",
                                "https://game.example.com.evil.example", "null"}) {
        INFO(refused);
        const Peer peer{t.port(), "127.0.0.1", origin(refused)};
        CHECK(peer.status == 403);
        CHECK(peer.body == "origin not allowed");
    }
    // and a C++ client (no Origin) links
    krmx::net::WebSocketClient alice;
    alice.connect("127.0.0.1", t.port());
    alice.link("alice");
    CHECK(alice.run_until([&] { return alice.linked(); }, 5s));
    const auto stats = statistics(t);
    CHECK(stats.refused_origin == 5);
    CHECK(stats.upgrades == 5);
}

TEST_CASE("allowed_origins: \"*\" allows any origin, \"null\" only when listed",
          "[net][websocket][limits][origin]") {
    krmx::net::WebSocketServerOptions options;
    SECTION("*") {
        options.allowed_origins = {"*"};
        ServerThread t{options};
        const auto guard = t.stop_guard();
        t.start();
        CHECK(Peer{t.port(), "127.0.0.1", origin("https://evil.example.com")}.status == 101);
        CHECK(Peer{t.port(), "127.0.0.1", origin("http://anything:1234")}.status == 101);
        CHECK(Peer{t.port(), "127.0.0.1", origin("null")}.status == 403);
        CHECK(statistics(t).refused_origin == 1);
    }
    SECTION("null") {
        options.allowed_origins = {"null"};
        ServerThread t{options};
        const auto guard = t.stop_guard();
        t.start();
        CHECK(Peer{t.port(), "127.0.0.1", origin("null")}.status == 101);
        CHECK(Peer{t.port(), "127.0.0.1", origin("https://game.example.com")}.status == 403);
        CHECK(statistics(t).refused_origin == 1);
    }
}

TEST_CASE("by default a server with static files lets only its own page upgrade; without them, any",
          "[net][websocket][limits][origin]") {
    const krmx::testing::TempDir dir;
    std::ofstream{dir.path() / "index.html"} << "<!doctype html>";
    krmx::net::WebSocketServerOptions options;
    options.static_files = dir.path();
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    const auto here = "127.0.0.1:" + std::to_string(t.port());
    const auto status = [&](const Fields& fields) {
        return Peer{t.port(), "127.0.0.1", fields}.status;
    };
    // the request's Host header is 127.0.0.1:port unless a field says otherwise
    CHECK(status(origin("http://" + here)) == 101);
    CHECK(status(origin("https://" + here)) == 101);  // the page over TLS, through a proxy
    CHECK(status({}) == 101);
    CHECK(status({{"Host", "game.example.com"}, {"Origin", "https://game.example.com"}}) == 101);
    CHECK(status({{"Host", "game.example.com"}, {"Origin", "https://evil.example.com"}}) == 403);
    CHECK(status(origin("http://localhost:" + std::to_string(t.port()))) == 403);
    CHECK(status(origin("http://127.0.0.1:" + std::to_string(t.port() + 1))) == 403);
    CHECK(status(origin("https://evil.example.com")) == 403);
    CHECK(status(origin("null")) == 403);
    CHECK(statistics(t).refused_origin == 5);

    ServerThread plain;  // no static files: any origin, as before the option existed
    const auto plain_guard = plain.stop_guard();
    plain.start();
    CHECK(Peer{plain.port(), "127.0.0.1", origin("https://evil.example.com")}.status == 101);
    CHECK(Peer{plain.port(), "127.0.0.1", origin("null")}.status == 101);
    CHECK(statistics(plain).refused_origin == 0);
}

}  // namespace websocket_limits_tests

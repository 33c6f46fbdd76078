// TLS (krmx/net/tls.hpp) over real loopback sockets with throw-away certificates (tls_support.hpp): a game over
// wss, https for static files, the peers that break the TLS layer (plain text, a stalled ClientHello,
// garbage records) with their counters and their slots given back, a client that refuses a certificate it
// cannot verify, and certificate reloads (by call, by watching the files, and a failed one).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <krmx/net/tls.hpp>
#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>
#include <krmx/sync/stream_client.hpp>
#include <krmx/sync/stream_domain.hpp>

#include "catch.hpp"
#include "claimable_counter/counter.hpp"
#include "claimed_counter_game.hpp"
#include "net_support.hpp"
#include "tls_support.hpp"

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace tls_tests {
namespace {

krmx::net::WebSocketServerOptions tls_options(const tls_support::Pki& pki, krmx::net::TlsServerOptions tls = {}) {
    krmx::net::WebSocketServerOptions options;
    options.tls = krmx::net::tls_files(pki.cert_file(), pki.key_file(), tls);
    options.log = {};
    return options;
}

krmx::net::WebSocketClient tls_client(const tls_support::Pki& pki) {
    return krmx::net::WebSocketClient{{.tls = krmx::net::tls_client({.ca_file = pki.ca_file()})}};
}

std::string wss(std::uint16_t port) { return "wss://127.0.0.1:" + std::to_string(port) + "/"; }

// A TCP socket to the server that writes exactly what the test says.
struct RawTcp {
    explicit RawTcp(std::uint16_t port) : socket(io) {
        socket.connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
    }
    void write(const std::string& bytes) { boost::asio::write(socket, boost::asio::buffer(bytes)); }
    /// Reads (and drops) until the server closes the socket; how long that took, at most `limit`.
    std::chrono::milliseconds until_closed(std::chrono::milliseconds limit = 5000ms) {
        const auto start = std::chrono::steady_clock::now();
        char buffer[4096];
        bool closed = false;
        std::function<void()> next = [&] {
            socket.async_read_some(boost::asio::buffer(buffer), [&](beast::error_code ec, std::size_t) {
                if (ec) {
                    closed = true;
                } else {
                    next();
                }
            });
        };
        next();
        io.restart();
        io.run_for(limit);  // (asynchronous: a synchronous read would wait past any deadline)
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        if (!closed) {
            beast::error_code ignored;
            socket.close(ignored);
            io.restart();
            io.run();  // the aborted read, which refers to this frame
        }
        return took;
    }
    boost::asio::io_context io;
    tcp::socket socket;
};

// The first bytes of a TLS 1.2 ClientHello record (handshake record, then the start of a ClientHello that
// announces 512 bytes) and no more: a peer that stalls in the middle of the handshake.
std::string half_client_hello() {
    std::string bytes{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11};
    bytes += std::string(20, '\x42');
    return bytes;
}

// What `f` threw (its what()), or "" when it did not throw.
template <class F>
std::string thrown(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

krmx::net::WebSocketServerStatistics stats(ServerThread& t) {
    return t.on_server([&] { return t.server().statistics(); });
}

}  // namespace

TEST_CASE("TLS: StreamClients play the claimable counter over wss", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    ServerThread t{tls_options(pki)};
    krmx::StreamDomain<Counter> server{t.server(), "counter", counter::model()};
    const auto guard = t.stop_guard();
    t.start();
    auto a = tls_client(pki);
    auto b = tls_client(pki);
    a.connect_url(wss(t.port()));
    b.connect("127.0.0.1", t.port());  // options().tls set: TLS too
    play_claimed_counter(t, server, a, b, [&] { b.connect_url(wss(t.port())); });  // bob comes back over wss
    const auto s = stats(t);
    CHECK(s.upgrades == 3);
    CHECK(s.tls_handshake_failures == 0);

    // a clean close over TLS (close frame, close_notify)
    a.disconnect();
    CHECK_FALSE(a.connected());
    CHECK(eventually([&] { return stats(t).open == 1; }));
}

TEST_CASE("TLS: plain text on the TLS port is dropped, counted, and gives its slot back", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    auto options = tls_options(pki);
    options.max_connections_per_address = 1;
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    {
        RawTcp plain{t.port()};
        plain.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK(plain.until_closed() < 3000ms);
    }
    {
        // a plain WebSocket client does not get in either
        krmx::net::WebSocketClient c;
        CHECK_THROWS(c.connect_url("ws://127.0.0.1:" + std::to_string(t.port()) + "/"));
    }
    REQUIRE(eventually([&] { return stats(t).open == 0; }));
    const auto s = stats(t);
    CHECK(s.tls_handshake_failures == 2);
    CHECK(s.tls_handshake_timeouts == 0);
    CHECK(s.upgrades == 0);
    // the one place this address has is free again
    auto c = tls_client(pki);
    c.connect_url(wss(t.port()));
    c.link("alice");
    CHECK(c.run_until([&] { return c.linked(); }, 5s));
}

TEST_CASE("TLS: a handshake that stalls halfway is dropped within handshake_timeout", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    auto options = tls_options(pki);
    options.handshake_timeout = 300ms;
    options.max_connections_per_address = 2;
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    RawTcp silent{t.port()};  // connects and says nothing
    RawTcp stalled{t.port()};
    stalled.write(half_client_hello());
    const auto took = stalled.until_closed();
    CHECK(took >= 200ms);
    CHECK(took < 2000ms);
    CHECK(silent.until_closed() < 2000ms);
    REQUIRE(eventually([&] { return stats(t).open == 0; }));
    const auto s = stats(t);
    CHECK(s.tls_handshake_failures == 2);
    CHECK(s.tls_handshake_timeouts == 2);
    // both places of the address are free again
    auto a = tls_client(pki);
    auto b = tls_client(pki);
    a.connect_url(wss(t.port()));
    b.connect_url(wss(t.port()));
    CHECK(stats(t).open == 2);
}

TEST_CASE("TLS: garbage records drop the connection, counted, and the server goes on", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    ServerThread t{tls_options(pki)};
    const auto guard = t.stop_guard();
    t.start();
    const std::string bad_record = std::string{"\x17\x03\x03\x00\x20", 5} + std::string(32, '\x5a');

    // in place of a ClientHello
    {
        RawTcp raw{t.port()};
        raw.write(bad_record);
        CHECK(raw.until_closed() < 3000ms);
    }
    // after the TLS handshake and the WebSocket upgrade: a record no key made
    boost::asio::io_context io;
    ssl::context ctx{ssl::context::tls_client};
    ctx.load_verify_file(pki.ca_file().string());
    ctx.set_verify_mode(ssl::verify_peer);
    websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws{io, ctx};
    beast::get_lowest_layer(ws).expires_after(5s);
    beast::get_lowest_layer(ws).connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), t.port()});
    ws.next_layer().handshake(ssl::stream_base::client);
    ws.handshake("127.0.0.1", "/");
    REQUIRE(eventually([&] { return stats(t).upgrades == 1; }));
    boost::asio::write(beast::get_lowest_layer(ws).socket(), boost::asio::buffer(bad_record));
    beast::flat_buffer buffer;
    beast::error_code ec;
    ws.read(buffer, ec);  // the server cut it off
    CHECK(ec);
    REQUIRE(eventually([&] { return stats(t).open == 0; }));
    const auto s = stats(t);
    CHECK(s.tls_handshake_failures == 1);
    CHECK(s.tls_errors == 1);
    // the server still serves
    auto c = tls_client(pki);
    c.connect_url(wss(t.port()));
    c.link("alice");
    CHECK(c.run_until([&] { return c.linked(); }, 5s));
}

TEST_CASE("TLS: a peer that does not read is dropped at max_queued_bytes while writes are in flight",
          "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    auto options = tls_options(pki);
    options.max_queued_bytes = 256 * 1024;
    ServerThread t{options};
    std::atomic<bool> linked{false};
    auto on_link = t.server().session().on_link([&](std::string_view) { linked = true; });
    const auto guard = t.stop_guard();
    t.start();
    boost::asio::io_context io;
    ssl::context ctx{ssl::context::tls_client};
    ctx.load_verify_file(pki.ca_file().string());
    ctx.set_verify_mode(ssl::verify_peer);
    websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws{io, ctx};
    beast::get_lowest_layer(ws).connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), t.port()});
    ws.next_layer().handshake(ssl::stream_base::client);
    ws.handshake("127.0.0.1", "/");
    ws.write(boost::asio::buffer(std::string{R"({"type":"krmx/link","payload":{"username":"alice","version":"0.5.4"}})"}));
    REQUIRE(eventually([&] { return linked.load(); }));
    // it never reads again: the server's writes stall in TLS records the kernel cannot take
    const std::string big = R"({"type":"x","payload":")" + std::string(4000, 'y') + "\"}";
    REQUIRE(eventually([&] {
        t.on_server([&] {
            for (int i = 0; i < 16; ++i) t.server().send("alice", big);
        });
        return stats(t).slow_readers == 1;
    }));
    REQUIRE(eventually([&] { return stats(t).open == 0; }));
    CHECK(stats(t).tls_errors == 0);
}

TEST_CASE("TLS: a client refuses a certificate it cannot verify", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    tls_support::Pki stranger;  // another CA, which signed nothing of the server's
    ServerThread t{tls_options(pki)};
    const auto guard = t.stop_guard();
    t.start();
    auto refusing = tls_client(stranger);
    CHECK(contains(thrown([&] { refusing.connect_url(wss(t.port())); }), "certificate verify failed"));
    CHECK_FALSE(refusing.connected());
    // a certificate from a CA it trusts, but for another host
    tls_support::Pki elsewhere;
    elsewhere.issue("elsewhere", 7, "DNS:elsewhere.example");
    ServerThread other{tls_options(elsewhere)};
    const auto other_guard = other.stop_guard();
    other.start();
    auto wrong_host = tls_client(elsewhere);
    CHECK(contains(thrown([&] { wrong_host.connect_url(wss(other.port())); }), "certificate verify failed"));
    // the right CA and host
    auto trusting = tls_client(pki);
    trusting.connect_url(wss(t.port()));
    CHECK(trusting.connected());
    // wss without TLS options is a mistake said at once
    krmx::net::WebSocketClient plain;
    CHECK_THROWS_AS(plain.connect_url(wss(t.port())), std::invalid_argument);
    CHECK_THROWS_AS(plain.connect_url("https://127.0.0.1/"), std::invalid_argument);
    CHECK_THROWS_AS(plain.connect_url("ws://127.0.0.1:99999/"), std::invalid_argument);
    CHECK_THROWS_AS(plain.connect_url("ws://:80/"), std::invalid_argument);
    // unverified, when asked for
    krmx::net::WebSocketClient lax{{.tls = krmx::net::tls_client({.verify_peer = false})}};
    lax.connect_url(wss(t.port()));
    CHECK(lax.connected());
    // the refusing clients' alerts end the handshakes at the servers
    CHECK(eventually([&] { return stats(t).tls_handshake_failures == 1; }));
    CHECK(eventually([&] { return stats(other).tls_handshake_failures == 1; }));
}

TEST_CASE("TLS: certificate and key files that cannot be used are named", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    const auto missing = pki.dir() / "missing.pem";
    CHECK(contains(thrown([&] { (void)krmx::net::tls_files(missing, pki.key_file()); }), missing.string()));
    CHECK(contains(thrown([&] { (void)krmx::net::tls_files(pki.cert_file(), missing); }), missing.string()));
    const auto garbage = pki.dir() / "garbage.pem";
    tls_support::write_file(garbage, "not a certificate\n");
    CHECK_THROWS_AS(krmx::net::tls_files(garbage, pki.key_file()), std::invalid_argument);
    CHECK(contains(thrown([&] { (void)krmx::net::tls_files(garbage, pki.key_file()); }), garbage.string()));
    // a key that belongs to another certificate
    const auto old_key = pki.dir() / "old-key.pem";
    std::filesystem::copy_file(pki.key_file(), old_key);
    pki.issue("server-2", 101);
    CHECK(contains(thrown([&] { (void)krmx::net::tls_files(pki.cert_file(), old_key); }), old_key.string()));
    CHECK(contains(thrown([&] { (void)krmx::net::tls_client({.ca_file = missing}); }), missing.string()));
    CHECK_NOTHROW(krmx::net::tls_files(pki.cert_file(), pki.key_file()));
}

TEST_CASE("TLS: reload_tls() serves a new certificate to new connections, old ones keep theirs", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    struct Seen {
        std::mutex mutex;
        std::vector<std::string> lines;  // "event file=..."
    };
    auto seen = std::make_shared<Seen>();
    auto options = tls_options(pki);
    options.log = [seen](const krmx::LogRecord& r) {
        std::string line{r.event};
        for (const auto& f : r.fields) line += " " + std::string{f.key} + "=" + f.value;
        const std::lock_guard lock{seen->mutex};
        seen->lines.push_back(line);
    };
    const auto logged = [&](const std::string& prefix) {
        const std::lock_guard lock{seen->mutex};
        for (const auto& l : seen->lines) {
            if (l.rfind(prefix, 0) == 0) return l;
        }
        return std::string{};
    };
    ServerThread t{options};
    std::vector<std::string> echoes;
    auto echo = t.server().session().on_message([&](std::string_view u, const krmx::Message& m) {
        t.server().send(u, std::string{m.text()});
    });
    const auto guard = t.stop_guard();
    t.start();
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-1");
    auto old_client = tls_client(pki);
    old_client.connect_url(wss(t.port()));
    old_client.link("alice");
    REQUIRE(old_client.run_until([&] { return old_client.linked(); }, 5s));
    auto sub = old_client.on_message([&](std::string_view text) { echoes.emplace_back(text); });

    pki.issue("server-2", 101);
    CHECK(t.server().reload_tls().get());
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-2");
    CHECK(logged("tls.reloaded") == "tls.reloaded file=" + pki.cert_file().string());
    // the connection made before goes on with its own
    old_client.send(R"({"type":"ping","payload":1})");
    REQUIRE(old_client.run_until([&] { return !echoes.empty(); }, 5s));
    CHECK(echoes[0] == R"({"type":"ping","payload":1})");

    // unusable files: the server keeps the certificate it has, counts and logs it
    tls_support::write_file(pki.key_file(), "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n");
    CHECK_FALSE(t.server().reload_tls().get());
    std::filesystem::remove(pki.cert_file());
    CHECK_FALSE(t.server().reload_tls().get());
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-2");
    const auto s = stats(t);
    CHECK(s.tls_reloads == 1);
    CHECK(s.tls_reload_failures == 2);
    CHECK(logged("tls.reload_failed file=" + pki.key_file().string() + " error=") != "");
    CHECK(logged("tls.reload_failed file=" + pki.cert_file().string() + " error=") != "");
    old_client.send(R"({"type":"ping","payload":2})");
    REQUIRE(old_client.run_until([&] { return echoes.size() == 2; }, 5s));
    auto new_client = tls_client(pki);
    new_client.connect_url(wss(t.port()));
    new_client.link("bob");
    CHECK(new_client.run_until([&] { return new_client.linked(); }, 5s));
}

TEST_CASE("TLS: reload_interval reloads files that changed, by itself", "[net][tls]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    ServerThread t{tls_options(pki, {.reload_interval = 50ms})};
    const auto guard = t.stop_guard();
    t.start();
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-1");
    std::this_thread::sleep_for(300ms);
    CHECK(stats(t).tls_reloads == 0);  // unchanged files are not read again
    // (a later modification time than the first files': file systems keep coarse times)
    std::this_thread::sleep_for(20ms);
    pki.issue("server-2", 101);
    REQUIRE(eventually([&] { return stats(t).tls_reloads == 1; }));
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-2");
    std::this_thread::sleep_for(300ms);
    CHECK(stats(t).tls_reloads == 1);
    // (a tick between issue()'s two renames may have seen the new key with the old certificate: one failure)
    const auto failures = stats(t).tls_reload_failures;
    CHECK(failures <= 1);
    // a half-written renewal fails once, and is not tried again until a file changes again
    tls_support::write_file(pki.key_file(), "not a key\n");
    REQUIRE(eventually([&] { return stats(t).tls_reload_failures == failures + 1; }));
    std::this_thread::sleep_for(300ms);
    CHECK(stats(t).tls_reload_failures == failures + 1);
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-2");
    pki.issue("server-3", 102);
    REQUIRE(eventually([&] { return stats(t).tls_reloads == 2; }));
    CHECK(tls_support::presented_name(t.port(), pki.ca_file()) == "server-3");
}

TEST_CASE("TLS: static files over https", "[net][tls][http]") {
    tls_support::Pki pki;
    pki.issue("server-1", 100);
    const auto site = pki.dir() / "site";
    std::filesystem::create_directories(site);
    tls_support::write_file(site / "index.html", "<!doctype html><title>krmx</title>");
    auto options = tls_options(pki);
    options.static_files = site;
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();
    const auto get = [&](const std::string& target) {
        boost::asio::io_context io;
        ssl::context ctx{ssl::context::tls_client};
        ctx.load_verify_file(pki.ca_file().string());
        ctx.set_verify_mode(ssl::verify_peer);
        beast::ssl_stream<beast::tcp_stream> stream{io, ctx};
        beast::get_lowest_layer(stream).expires_after(5s);
        beast::get_lowest_layer(stream).connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), t.port()});
        stream.handshake(ssl::stream_base::client);
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "127.0.0.1");
        http::write(stream, req);
        beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(stream, buffer, res);
        return std::make_pair(static_cast<int>(res.result_int()), res.body());
    };
    CHECK(get("/") == std::make_pair(200, std::string{"<!doctype html><title>krmx</title>"}));
    CHECK(get("/missing.js").first == 404);
    CHECK(get("/../x").first == 403);
    {
        RawTcp plain{t.port()};  // http:// to an https port
        plain.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK(plain.until_closed() < 3000ms);
    }
    REQUIRE(eventually([&] { return stats(t).open == 0; }));
    const auto s = stats(t);
    CHECK(s.http_files_served == 1);
    CHECK(s.http_refused == 2);
    CHECK(s.tls_handshake_failures == 1);
}

}  // namespace tls_tests

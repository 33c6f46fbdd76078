// The WebSocket server's plain HTTP side: static files from the application's folder on the same port as
// the WebSocket, over real loopback sockets. Every way out of the folder gets a 4xx, counted; the
// WebSocket keeps working beside it.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <krmx/net/websocket_client.hpp>
#include <krmx/net/websocket_server.hpp>

#include "catch.hpp"
#include "net_support.hpp"
#include "temp_dir.hpp"

namespace websocket_http_tests {
namespace {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream{p, std::ios::binary} << text;
}

struct Answer {
    int status = 0;
    std::string content_type;
    std::string content_length;
    std::string body;
};

// One request with a target exactly as given (Beast writes it verbatim), one answer.
Answer request(std::uint16_t port, http::verb verb, const std::string& target) {
    boost::asio::io_context context;
    beast::tcp_stream stream{context};
    stream.expires_after(10s);
    stream.connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    if (verb == http::verb::head) parser.skip(true);
    http::read(stream, buffer, parser);
    const auto& res = parser.get();
    return {static_cast<int>(res.result_int()), std::string{res[http::field::content_type]},
            std::string{res[http::field::content_length]}, res.body()};
}

// Raw bytes, for what no HTTP library would send (a NUL in the request line).
std::string raw_request(std::uint16_t port, const std::string& bytes) {
    boost::asio::io_context context;
    beast::tcp_stream stream{context};
    stream.expires_after(10s);
    stream.connect(tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
    boost::asio::write(stream, boost::asio::buffer(bytes));
    std::string answer;
    beast::error_code ec;
    char chunk[4096];
    for (;;) {
        const auto n = stream.read_some(boost::asio::buffer(chunk), ec);
        answer.append(chunk, n);
        if (ec) break;
    }
    return answer;
}

}  // namespace

TEST_CASE("the WebSocket server serves static files on the same port", "[net][websocket][static]") {
    const krmx::testing::TempDir dir;
    write(dir.path() / "site" / "index.html", "<!doctype html><h1>krmx</h1>");
    write(dir.path() / "site" / "app.js", "console.log(1);");
    write(dir.path() / "outside" / "secret.txt", "secret");
    fs::create_symlink(dir.path() / "outside" / "secret.txt", dir.path() / "site" / "link-out.txt");
    using namespace std::string_literals;
    krmx::net::WebSocketServerOptions options;
    options.static_files = dir.path() / "site";
    ServerThread t{options};
    const auto guard = t.stop_guard();
    t.start();

    const auto index = request(t.port(), http::verb::get, "/");
    CHECK(index.status == 200);
    CHECK(index.content_type == "text/html; charset=utf-8");
    CHECK(index.body == "<!doctype html><h1>krmx</h1>");
    const auto app = request(t.port(), http::verb::get, "/app.js?v=2");
    CHECK(app.status == 200);
    CHECK(app.content_type == "text/javascript; charset=utf-8");
    CHECK(app.body == "console.log(1);");
    const auto head = request(t.port(), http::verb::head, "/app.js");
    CHECK(head.status == 200);
    CHECK(head.content_length == "15");
    CHECK(head.body.empty());

    for (const char* target : {"/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/%2E%2E%2Foutside%2Fsecret.txt",
                               "/link-out.txt"}) {
        INFO(target);
        const auto a = request(t.port(), http::verb::get, target);
        CHECK(a.status == 403);
        CHECK(a.body.find("secret") == std::string::npos);
    }
    for (const char* target : {"http://127.0.0.1/index.html", "/%00", "/index.html%00.js", "/%zz"}) {
        INFO(target);
        CHECK(request(t.port(), http::verb::get, target).status == 400);
    }
    CHECK(request(t.port(), http::verb::get, "/missing.js").status == 404);
    CHECK(request(t.port(), http::verb::post, "/index.html").status == 405);
    // A NUL byte in the request line: the parser refuses it; the socket closes and nothing is served.
    const auto nul = raw_request(t.port(), "GET /index.html\0/../../outside/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n"s);
    CHECK(nul.find("secret") == std::string::npos);
    CHECK(nul.find("200 OK") == std::string::npos);

    // and the WebSocket still works on the same port
    krmx::net::WebSocketClient alice;
    alice.connect("127.0.0.1", t.port());
    alice.link("alice");
    CHECK(alice.run_until([&] { return alice.linked(); }, 5s));

    const auto stats = t.on_server([&] { return t.server().statistics(); });
    CHECK(stats.http_files_served == 3);
    CHECK(stats.http_refused == 10);
    CHECK(stats.upgrades == 1);
}

TEST_CASE("without a static folder plain HTTP is refused as before", "[net][websocket][static]") {
    ServerThread t;
    const auto guard = t.stop_guard();
    t.start();
    const auto a = request(t.port(), http::verb::get, "/");
    CHECK(a.status == 400);
    CHECK(a.body == "expected a WebSocket upgrade");
    CHECK(t.on_server([&] { return t.server().statistics().refused_not_websocket; }) == 1);
}

TEST_CASE("a static folder that does not exist is refused at construction", "[net][websocket][static]") {
    const krmx::testing::TempDir dir;
    krmx::net::WebSocketServerOptions options;
    options.static_files = dir.path() / "missing";
    CHECK_THROWS_AS(krmx::net::WebSocketServer{options}, std::invalid_argument);
}

}  // namespace websocket_http_tests

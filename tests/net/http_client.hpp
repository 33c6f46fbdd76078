#pragma once
// One plain HTTP request over loopback and its answer, for the tests of the server's HTTP routes.
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace krmx::testing {

struct HttpAnswer {
    int status = 0;
    std::string content_type;
    std::string content_length;
    std::string www_authenticate;
    std::string body;
};

inline HttpAnswer http_request(std::uint16_t port, boost::beast::http::verb verb, const std::string& target,
                               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    namespace beast = boost::beast;
    namespace http = boost::beast::http;
    boost::asio::io_context context;
    beast::tcp_stream stream{context};
    stream.expires_after(std::chrono::seconds{10});
    stream.connect(boost::asio::ip::tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
    http::request<http::empty_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    if (verb == http::verb::head) parser.skip(true);
    http::read(stream, buffer, parser);
    const auto& res = parser.get();
    return {static_cast<int>(res.result_int()), std::string{res[http::field::content_type]},
            std::string{res[http::field::content_length]}, std::string{res[http::field::www_authenticate]},
            res.body()};
}

}  // namespace krmx::testing

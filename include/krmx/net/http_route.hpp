#pragma once
// Plain HTTP answered by application code on the WebSocket server's port (WebSocketServer::serve_http):
// health probes, metrics, a small status page. A route is one exact path; it gets GET and HEAD (HEAD: the
// same answer without its body), other methods get 405 without reaching it. Routes come before static files;
// WebSocket upgrades never reach them. A handler runs on the server's thread, so it must be quick: it holds
// up every connection meanwhile.
//
//   server.serve_http("/version", [](const krmx::net::HttpRequest&) {
//       return krmx::net::HttpResponse{200, "text/plain; charset=utf-8", "1.2.3\n"};
//   });

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace krmx::net {

/// The request as a route sees it; the views are valid during the handler's call only.
class HttpRequest {
  public:
    using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

    HttpRequest(std::string_view method, std::string_view path, std::string_view query, HeaderLookup header)
        : method_(method), path_(path), query_(query), header_(std::move(header)) {}

    /// "GET" or "HEAD".
    [[nodiscard]] std::string_view method() const noexcept { return method_; }
    /// The path as sent, without the query ("/metrics").
    [[nodiscard]] std::string_view path() const noexcept { return path_; }
    /// What follows the `?`, as sent (not decoded); empty without one.
    [[nodiscard]] std::string_view query() const noexcept { return query_; }
    /// A header's value (name case-insensitive; the first when there are several); none when absent.
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
        return header_ ? header_(name) : std::nullopt;
    }

  private:
    std::string_view method_;
    std::string_view path_;
    std::string_view query_;
    HeaderLookup header_;
};

struct HttpResponse {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body = {};
    /// More header fields (e.g. WWW-Authenticate on a 401).
    std::vector<std::pair<std::string, std::string>> headers = {};
};

/// A route's handler. One that throws is answered 500 and counted in WebSocketServerStatistics::callback_errors.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

}  // namespace krmx::net

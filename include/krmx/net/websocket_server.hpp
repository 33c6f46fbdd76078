#pragma once
// krmx::net::WebSocketServer: a Krmx server on Boost.Beast WebSockets. It drives a krmx::net::Session
// (the protocol, without I/O) from one single-threaded io_context, so the session, every domain and the
// game's own code run on one thread and need no locks. Needs the krmx::websocket CMake target (Boost
// headers: Beast and Asio).
//
//   krmx::net::WebSocketServer server{{.port = 8082}};
//   krmx::StreamDomain counter{server, "counter", counter::model()};  // on server.host()
//   std::cout << "listening on " << server.port() << "\n";
//   server.run();                                                    // until stop()
//
// Each connection: HTTP upgrade (optional path check: HTTP 400 on a mismatch; Origin check: HTTP 403;
// optional query-parameter checks: the socket is dropped right after the upgrade, as @krmx/server does),
// then text frames go to the session. Defined answers to bad peers, each counted in
// WebSocketServerStatistics:
// - a binary frame: close 1003 (unsupported data); a frame over max_message_bytes: close 1009;
//   invalid UTF-8 in a text frame: close 1007 (both by Beast);
// - more than max_frames_per_second frames in one second: close 1008 (policy); after a flood or a binary
//   frame the peer's answer to the close is awaited 500 ms at most (what it sends meanwhile is discarded);
// - a peer that does not answer a ping: every ping_interval without data it gets a ping; another
//   interval without data and the socket is closed (Beast's keep-alive);
// - a peer that does not read: the bytes of frames its socket has not taken are bounded by
//   max_queued_bytes; a frame that would pass the bound drops the connection at once;
// - a connection that does not link within SessionOptions::link_deadline: close 1008;
// - more than max_connections open sockets: a new socket is closed before the upgrade;
// - more than max_connections_per_address open sockets from one client address (an IPv4 address, an IPv6
//   /64): a new socket is closed at accept, before anything is read; a client behind a trusted proxy
//   (trusted_proxies: its address comes from X-Forwarded-For, so it is known only once the request is
//   read) gets HTTP 429 instead. X-Forwarded-For from anyone else is ignored;
// - an upgrade whose Origin is not allowed (allowed_origins; by default, when the server serves its own
//   page from static_files, only that page's origin): HTTP 403. Browsers always send an Origin, and let
//   any page open a WebSocket anywhere: without this check a page elsewhere can use a visitor's browser
//   (and cookies) as a client. Clients that are no browsers send none and are let in.
// A broadcast (or a room's message) is serialised once; a small frame is copied into each connection's
// buffer, a large one (a history page) is shared by reference; the frames a connection gets in one turn of
// the event loop go to its socket in one gathered write (detail::CombiningStream).
//
// Plain HTTP on the same port (a browser loads the page, then opens the WebSocket to where it came from):
// with `static_files` set, a request that is no upgrade is a GET or HEAD for a file in that folder (`/` is
// its index.html). Never outside it: `..` and hidden segments (also percent-encoded) get 403, as do
// symlinks that lead out; malformed targets (absolute form, bad escapes, NUL, backslash) 400; missing
// files 404; other methods 405. Counted in http_files_served and http_refused. Files are read on the
// server's thread: this is for a game's small web client, not a file server.
//
// Application routes (serve_http, net/http_route.hpp) answer plain GET/HEAD requests for their exact path
// before static files (other methods: 405), counted in http_routes_served. With `health` the server
// answers /healthz (200 while it serves) and /readyz (200 when ready; 503 with what is not: the server is
// stopping, a durable domain's last commit failed, a readiness check of the application's said so or threw).
//
// TLS (https and wss on the same port): set `tls` to krmx::net::tls_files(cert, key) from krmx/net/tls.hpp
// (CMake target krmx::tls, OpenSSL). This header never includes OpenSSL: a server behind a proxy that ends
// TLS needs neither the headers nor the libraries. The TLS handshake comes first, within handshake_timeout
// together with the HTTP request; then everything above works unchanged, over TLS. reload_tls() reads the
// certificate files again without a restart (new connections get the new certificate, open ones keep theirs).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/log.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/net/detail/address.hpp"
#include "krmx/net/detail/combining_stream.hpp"
#include "krmx/net/detail/origin.hpp"
#include "krmx/net/detail/query.hpp"
#include "krmx/net/detail/static_files.hpp"
#include "krmx/net/detail/text_frame.hpp"
#include "krmx/net/http_route.hpp"
#include "krmx/net/session.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::net {

namespace detail {
class WebSocketServerCore;
class ServerConnection;

/// A certificate or key file that could not be used: which one, and why.
struct TlsLoadError {
    std::string file;
    std::string error;
};

// TLS for a server, behind an interface so that this header needs no OpenSSL: krmx/net/tls.hpp implements it
// (krmx::net::tls_files). Called on the server's thread only.
class TlsAcceptor {
  public:
    TlsAcceptor() = default;
    TlsAcceptor(const TlsAcceptor&) = delete;
    TlsAcceptor& operator=(const TlsAcceptor&) = delete;
    virtual ~TlsAcceptor() = default;
    /// A connection for an accepted socket that speaks TLS with the certificate loaded last.
    [[nodiscard]] virtual std::shared_ptr<ServerConnection> connection(WebSocketServerCore& core,
                                                                       boost::asio::ip::tcp::socket socket,
                                                                       IpAddress peer, std::string address) = 0;
    /// Reads the files again; from now on new connections use them. On failure the old ones stay in use.
    [[nodiscard]] virtual std::optional<TlsLoadError> reload() = 0;
    /// True when a file's modification time differs from when it was last read (or tried).
    [[nodiscard]] virtual bool changed() = 0;
    /// How often changed() is asked on the tick; zero: never.
    [[nodiscard]] virtual Duration reload_interval() const noexcept = 0;
    /// The certificate file, for the log.
    [[nodiscard]] virtual std::string certificate_file() const = 0;
};
}  // namespace detail

/// A query parameter a connection's URL must satisfy: present (true) or absent (false), equal to a
/// string, or accepted by a predicate (then it must be present). As @krmx/server's `http.queryParams`.
struct QueryParameter {
    std::string name;
    std::variant<bool, std::string, std::function<bool(std::string_view)>> expect;
};

struct WebSocketServerOptions {
    /// Where to listen; port 0 picks a free port (see WebSocketServer::port()).
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;
    /// The URL path connections must ask for (e.g. "/krmx"); empty: any path.
    std::string path = {};
    std::vector<QueryParameter> query = {};
    /// A folder whose files plain HTTP GETs are answered with (see above); empty: plain HTTP gets 400.
    /// Must exist when the server is made (std::invalid_argument otherwise).
    std::filesystem::path static_files = {};
    /// Larger files in static_files are not served (500).
    std::size_t max_static_file_bytes = std::size_t{16} << 20;
    /// Keep-alive: a ping after this long without data from the peer, closed after twice this. Zero: off.
    Duration ping_interval = std::chrono::seconds{30};
    /// The whole HTTP upgrade must be done within this.
    Duration handshake_timeout = std::chrono::seconds{10};
    /// Incoming frames longer than this close the connection (1009).
    std::size_t max_message_bytes = std::size_t{1} << 20;
    /// Outgoing bytes (whole frames) a connection may have that its socket has not taken yet.
    std::size_t max_queued_bytes = std::size_t{8} << 20;
    /// Frames a connection may send per second; more closes it (1008). Zero: no limit.
    std::size_t max_frames_per_second = 10'000;
    /// Open sockets (including those still upgrading); more are closed at once.
    std::size_t max_connections = 20'000;
    /// Open sockets (including those still upgrading) per client address: an IPv4 address, an IPv6 address
    /// by its /64, an IPv4-mapped IPv6 address as its IPv4 address. More are closed at accept, before
    /// anything is read (behind a trusted proxy: HTTP 429 once the request is read). This key is also the
    /// one the session's per-address limits count by (Session::connect). Zero: no limit.
    std::size_t max_connections_per_address = 0;
    /// Reverse proxies whose X-Forwarded-For is believed: addresses or CIDR networks ("10.0.0.0/8",
    /// "::1", "127.0.0.1"). A request from one of them comes from the rightmost X-Forwarded-For entry that
    /// is not itself a trusted proxy (all the header's fields, in order); a missing or unparsable header
    /// counts forwarded_invalid and the proxy's own address is used. Anyone else's X-Forwarded-For is
    /// ignored. An entry that is no address or network throws std::invalid_argument when the server is made.
    std::vector<std::string> trusted_proxies = {};
    /// Origins that may open a WebSocket: "https://game.example.com", "http://127.0.0.1:8082" (scheme and
    /// host case-insensitive, the port exact, a default port may be left out), "*" for any, "null" for the
    /// opaque origin (sandboxed frames, file: pages; refused unless listed, also with "*"). Empty: when
    /// static_files is set, only the server's own page (an Origin of http or https whose host[:port] is the
    /// request's Host header: a proxy in front must keep the Host header, or list the origin here); without
    /// static_files, any. Upgrades without an Origin (clients that are no browsers) are always let in. A
    /// refused one gets HTTP 403. An entry that is none of these throws std::invalid_argument.
    std::vector<std::string> allowed_origins = {};
    /// stop() waits this long for queued frames to reach their peers before it cuts the rest.
    Duration stop_timeout = std::chrono::seconds{2};
    /// How often the session's deadlines (authentication, link) are checked.
    Duration tick_interval = std::chrono::milliseconds{100};
    /// Once connections' write buffers of at least this many bytes in all have been given back (a burst,
    /// such as a thousand users linking at once, is over), the server asks the allocator to return free
    /// memory to the system (glibc's malloc_trim; elsewhere nothing), so that a burst does not leave the
    /// process large for good. Checked every tick, and done only at a tick after which less than a sixteenth
    /// of this was sent: malloc_trim walks the whole heap, a stall that a busy server should not take.
    /// Zero: never.
    std::size_t return_memory_after = std::size_t{16} << 20;
    SessionOptions session = {};
    /// Answer /healthz and /readyz (see above) on this port. Off by default: the probes answer anyone who
    /// can reach the port, and /readyz tells why it is not ready (domain names, store errors), which an
    /// internet-facing game may not want to publish; and the paths would hide static files of those names.
    /// Behind a load balancer that probes the port directly, turn it on.
    bool health = false;
    /// TLS on this port (https, wss): krmx::net::tls_files(cert, key) from krmx/net/tls.hpp (target krmx::tls).
    /// Empty: plain TCP (ws, http), for example behind a proxy that ends TLS.
    std::shared_ptr<detail::TlsAcceptor> tls = {};
    /// Where the server's notable events go, one line each (started, stopped, refused sockets, floods,
    /// slow readers dropped, ...): human_log() to standard error by default, json_log() for a collector, any
    /// krmx::LogSink, or {} for none. The session logs here too unless its own log is set.
    LogSink log = human_log();
};

/// Socket-level counters. Never reset. The protocol's counters are in `session().statistics()`.
struct WebSocketServerStatistics {
    std::uint64_t sockets_accepted = 0;
    std::uint64_t upgrades = 0;               ///< sockets that became WebSocket connections
    std::uint64_t refused_full = 0;           ///< over max_connections: closed before the upgrade
    std::uint64_t refused_address_full = 0;   ///< over max_connections_per_address: closed at accept, or 429
    std::uint64_t refused_origin = 0;         ///< an Origin that allowed_origins does not allow: HTTP 403
    std::uint64_t forwarded_invalid = 0;      ///< a trusted proxy's X-Forwarded-For missing or unparsable
    std::uint64_t refused_path = 0;           ///< wrong path: HTTP 400
    std::uint64_t refused_not_websocket = 0;  ///< an HTTP request that is no upgrade: HTTP 400
    std::uint64_t refused_query = 0;          ///< query parameters not as required: dropped
    std::uint64_t handshake_failures = 0;     ///< broken or too slow HTTP requests and upgrades
    std::uint64_t tls_handshake_failures = 0;  ///< TLS handshakes that failed (plain text, bad records) or timed out
    std::uint64_t tls_handshake_timeouts = 0;  ///< of those, the ones not done within handshake_timeout
    std::uint64_t tls_errors = 0;              ///< TLS failures after the handshake (malformed records, ...)
    std::uint64_t tls_reloads = 0;             ///< certificate reloads that worked
    std::uint64_t tls_reload_failures = 0;     ///< reloads refused (unreadable, invalid, mismatched): old one kept
    std::uint64_t http_files_served = 0;      ///< static files answered (GET or HEAD, 200)
    std::uint64_t http_refused = 0;           ///< static requests answered 4xx/5xx (traversal, missing, ...)
                                              ///< and route requests of other methods (405)
    std::uint64_t http_routes_served = 0;     ///< GET/HEAD answered by a route (serve_http), any status
    std::uint64_t readiness_check_errors = 0; ///< readiness checks (add_readiness_check) that threw
    std::uint64_t binary_frames = 0;          ///< closed 1003
    std::uint64_t oversized_frames = 0;       ///< closed 1009
    std::uint64_t invalid_utf8 = 0;           ///< closed 1007
    std::uint64_t floods = 0;                 ///< closed 1008: over max_frames_per_second
    std::uint64_t missed_pongs = 0;           ///< keep-alive timeouts
    std::uint64_t slow_readers = 0;           ///< outgoing queue over max_queued_bytes: dropped
    std::uint64_t link_deadline_closes = 0;   ///< closed 1008 by the session's link deadline
    std::uint64_t other_errors = 0;           ///< sockets that failed otherwise (reset by peer, ...)
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t memory_returns = 0;  ///< times free memory went back to the system after a burst
    std::uint64_t open = 0;            ///< sockets open now
    /// Functions given to post() and after(), and application code called from a frame, that threw: each is
    /// counted and the server goes on. (The session's own callbacks: session().statistics().)
    std::uint64_t callback_errors = 0;
};

namespace detail {

// How long a peer that broke the rules gets to answer the close frame: a peer that plays by them answers
// within a round trip; a flooder that does not answer is read (and its frames discarded) until then.
inline constexpr Duration violation_close_deadline = std::chrono::milliseconds{500};

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;

// One socket, from accept to close, as the core sees it, whatever carries its bytes (plain TCP here, TLS in
// tls.hpp): one virtual call per frame queued. Owned by the handlers in flight (shared_ptr) and by the core's map.
class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
  public:
    /// `address`: the key the socket counts under (held until it ends); empty when the peer is a trusted
    /// proxy: then the client's is known once the request is read.
    explicit ServerConnection(std::string address) : address_(std::move(address)), counted_(!address_.empty()) {}
    ServerConnection(const ServerConnection&) = delete;
    ServerConnection& operator=(const ServerConnection&) = delete;
    virtual ~ServerConnection() = default;

    virtual void start() = 0;
    virtual void enqueue(const SharedText& text) = 0;
    /// Flush what is queued, then a close frame with `code`.
    virtual void close_after_flush(websocket::close_code code) = 0;
    /// The same for a peer that broke the rules (a flood, a binary frame): its answer to the close frame is
    /// awaited for violation_close_deadline at most, not handshake_timeout, since until then the close
    /// handshake reads and discards whatever it goes on sending.
    virtual void close_violation(websocket::close_code code) = 0;
    /// Drop the socket now, without a close frame.
    virtual void terminate() noexcept = 0;
    /// Drop the socket now and let go of it (the core's count of it too).
    virtual void abort() = 0;
    [[nodiscard]] std::optional<ConnectionId> id() const noexcept { return id_; }
    /// The client's address key; counted() while it holds a place in the core's per-address count.
    [[nodiscard]] const std::string& address() const noexcept { return address_; }
    [[nodiscard]] bool counted() const noexcept { return counted_; }
    /// Outgoing bytes its socket has not taken yet.
    [[nodiscard]] virtual std::size_t queued_bytes() const noexcept = 0;

  protected:
    std::optional<ConnectionId> id_;
    std::string address_;
    bool counted_ = false;  // holds one of address_'s places; given back exactly once, in finish()
};

// A connection over `NextLayer`: Beast's tcp_stream (plain), or an SSL stream over one (tls.hpp, which starts
// with the TLS handshake and then calls read_request()).
template <class NextLayer>
class BasicServerConnection : public ServerConnection {
  public:
    /// `layer`: what makes NextLayer (the socket; the socket and an SSL context).
    template <class... Layer>
    BasicServerConnection(WebSocketServerCore& core, IpAddress peer, std::string address, Layer&&... layer)
        : ServerConnection(std::move(address)),
          core_(&core),
          ws_(std::forward<Layer>(layer)...),
          peer_(std::move(peer)) {}

    void start() override;
    void enqueue(const SharedText& text) final;
    void close_after_flush(websocket::close_code code) final;
    void close_violation(websocket::close_code code) final;
    void terminate() noexcept final;
    void abort() final;
    [[nodiscard]] std::size_t queued_bytes() const noexcept final { return ws_.next_layer().unflushed_bytes(); }

  protected:
    using Ws = websocket::stream<BasicCombiningStream<NextLayer>>;

    [[nodiscard]] std::shared_ptr<BasicServerConnection> me() {
        return std::static_pointer_cast<BasicServerConnection>(shared_from_this());
    }
    /// What every start() does first: the handshake deadline on the TCP layer, and the layers' writes tied to
    /// this connection's life.
    void begin();
    /// Reads the HTTP request, within the deadline begin() set.
    void read_request();
    void finish(beast::error_code ec);

    WebSocketServerCore* core_;
    Ws ws_;  // writes combined per turn of the loop (combining_stream.hpp)
    bool dead_ = false;  // the socket is gone or going: every handler just unwinds

  private:
    void on_request(beast::error_code ec);
    [[nodiscard]] bool admit_forwarded();
    [[nodiscard]] bool origin_allowed() const;
    void refuse(http::status status, std::string body);
    void serve_static();
    void serve_route(const HttpHandler& handler, std::string_view path, std::string_view query);
    /// Plain HTTP is GET or HEAD: anything else is answered 405 (counted in http_refused), and true.
    [[nodiscard]] bool refused_method();
    void respond(std::shared_ptr<http::response<http::string_body>> response);
    void on_accept(beast::error_code ec);
    void read();
    void on_read(beast::error_code ec, std::size_t bytes);

    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    std::shared_ptr<http::response<http::string_body>> response_;
    IpAddress peer_;
    bool closing_ = false;  // a close frame follows what is buffered; nothing more is sent
    TimePoint window_start_{};
    std::size_t window_frames_ = 0;
};

/// True for errors of the TLS layer (OpenSSL's, and the SSL stream's own), told apart without its headers.
[[nodiscard]] inline bool tls_error(const beast::error_code& ec) noexcept {
    const std::string_view category = ec.category().name();
    return category.substr(0, 8) == "asio.ssl";
}

class WebSocketServerCore final : public SessionSink {
  public:
    explicit WebSocketServerCore(WebSocketServerOptions options)
        : options_(std::move(options)),
          context_(1),
          acceptor_(context_),
          tick_timer_(context_),
          stop_timer_(context_),
          log_(options_.log),
          session_(*this, with_log(options_.session, log_)),
          origins_(options_.allowed_origins, !options_.static_files.empty()),
          tls_(options_.tls) {
        if (!options_.static_files.empty() && !std::filesystem::is_directory(options_.static_files)) {
            throw std::invalid_argument("static_files is not a folder: " + options_.static_files.string());
        }
        for (const auto& entry : options_.trusted_proxies) {
            auto network = IpNetwork::parse(entry);
            if (!network) {
                throw std::invalid_argument("trusted_proxies: \"" + entry +
                                            "\" is not an IP address or a network (address/prefix length)");
            }
            trusted_.push_back(*network);
        }
        const auto address = asio::ip::make_address(options_.address);
        const tcp::endpoint endpoint{address, options_.port};
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        port_ = acceptor_.local_endpoint().port();
        accept();
        schedule_tick();
        log_.info("server.started", "the server listens",
                  {{"address", options_.address}, {"port", std::to_string(port_)}});
    }
    WebSocketServerCore(const WebSocketServerCore&) = delete;
    WebSocketServerCore& operator=(const WebSocketServerCore&) = delete;
    ~WebSocketServerCore() override {
        // Handlers still queued own connections; they must not reach a half-destroyed core.
        for (auto& [id, c] : connections_) c->terminate();
        for (auto& c : upgrading_) c->terminate();
        connections_.clear();
        upgrading_.clear();
    }

    // SessionSink
    void send(ConnectionId connection, SharedText text) override {
        const auto it = connections_.find(connection);
        if (it != connections_.end()) it->second->enqueue(text);
    }
    void close(ConnectionId connection, CloseReason reason) override {
        const auto it = connections_.find(connection);
        if (it == connections_.end()) return;
        if (reason == CloseReason::link_deadline) {
            ++statistics_.link_deadline_closes;
            log_.info("connection.link_deadline", "a connection did not link in time and is closed",
                      {{"address", it->second->address()}});
            it->second->close_after_flush(websocket::close_code::policy_error);
        } else {
            it->second->close_after_flush(websocket::close_code::going_away);
        }
    }

    void stop() {
        if (stopping_) return;
        stopping_ = true;
        log_.info("server.stopping", "the server stops: users leave, queued frames are flushed",
                  {{"connections", std::to_string(connections_.size())}});
        beast::error_code ignored;
        acceptor_.close(ignored);
        tick_timer_.cancel();
        for (auto& c : upgrading_) c->terminate();
        session_.close_all();
        for (auto& timer : user_timers_) timer->cancel();
        stop_timer_.expires_after(options_.stop_timeout);
        stop_timer_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            std::vector<std::shared_ptr<ServerConnection>> rest;
            for (auto& [id, c] : connections_) rest.push_back(c);
            for (auto& c : rest) c->abort();  // through finish(): each gives its counts back
            log_.warning("server.stopped", "the server stopped; connections that had not flushed were cut",
                         {{"cut", std::to_string(rest.size())}});
            context_.stop();
        });
        maybe_stopped();
    }

    void after(Duration delay, std::function<void()> f) {
        auto timer = std::make_shared<asio::steady_timer>(context_);
        timer->expires_after(delay);
        user_timers_.push_back(timer);
        timer->async_wait([this, timer, f = std::move(f)](beast::error_code ec) {
            std::erase(user_timers_, timer);
            if (ec || stopping_) return;
            try {
                f();
            } catch (...) {
                callback_failed("a function given to after()");
            }
        });
    }

    /// Reads the TLS files again (server thread). False without TLS, or when they are unusable: then the
    /// old certificate stays, counted and logged.
    [[nodiscard]] bool reload_tls() {
        if (!tls_) return false;
        tls_checked_ = Clock::now();
        if (auto error = tls_->reload()) {
            ++statistics_.tls_reload_failures;
            log_.warning("tls.reload_failed", "the TLS files could not be loaded; the old certificate stays in use",
                         {{"file", error->file}, {"error", error->error}});
            return false;
        }
        ++statistics_.tls_reloads;
        log_.info("tls.reloaded", "new connections use the certificate loaded now",
                  {{"file", tls_->certificate_file()}});
        return true;
    }

    [[nodiscard]] asio::io_context& context() noexcept { return context_; }
    [[nodiscard]] Session& session() noexcept { return session_; }
    [[nodiscard]] const WebSocketServerOptions& options() const noexcept { return options_; }
    [[nodiscard]] WebSocketServerStatistics& statistics() noexcept { return statistics_; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] const Logger& log() const noexcept { return log_; }
    [[nodiscard]] bool stopping() const noexcept { return stopping_; }
    [[nodiscard]] const OriginPolicy& origins() const noexcept { return origins_; }
    [[nodiscard]] std::size_t queued_bytes() const noexcept {
        std::size_t total = 0;
        for (const auto& [id, c] : connections_) total += c->queued_bytes();
        return total;
    }
    void serve_http(std::string path, HttpHandler handler) { routes_[std::move(path)] = std::move(handler); }
    void stop_serving_http(std::string_view path) {
        const auto it = routes_.find(path);
        if (it != routes_.end()) routes_.erase(it);
    }
    /// The route for `path`, if any (a copy: a handler may remove its own route).
    [[nodiscard]] std::optional<HttpHandler> route(std::string_view path) const {
        if (routes_.empty()) return std::nullopt;
        const auto it = routes_.find(path);
        if (it == routes_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] bool trusted_proxy(const IpAddress& a) const {
        const auto contains = [&a](const IpNetwork& n) {
            return n.contains(a);
        };
        return std::any_of(trusted_.begin(), trusted_.end(), contains);
    }

    /// In a catch block: counts the error and logs what was thrown, so that the server goes on.
    void callback_failed(std::string_view where) noexcept {
        ++statistics_.callback_errors;
        log_.error("callback.failed", "application code threw; the server goes on",
                   {{"where", std::string{where}}, {"error", krmx::detail::current_exception_text()}});
    }

    /// Takes one of `key`'s places; false when max_connections_per_address are taken.
    [[nodiscard]] bool count_address(const std::string& key) {
        const auto limit = options_.max_connections_per_address;
        const auto it = per_address_.find(key);
        if (it == per_address_.end()) {
            per_address_.emplace(key, 1);
            return true;
        }
        if (limit > 0 && it->second >= limit) return false;
        ++it->second;
        return true;
    }

    // For connections.
    ConnectionId opened(const std::shared_ptr<ServerConnection>& c) {
        std::erase(upgrading_, c);
        const ConnectionId id = session_.connect(c->address());
        connections_.emplace(id, c);
        ++statistics_.upgrades;
        return id;
    }
    void receive(ConnectionId id, std::string_view text) {
        try {
            session_.receive(id, text);
        } catch (...) {
            callback_failed("a message's handling");  // a domain threw past the session: keep serving
        }
    }
    void closed(const std::shared_ptr<ServerConnection>& c) {
        std::erase(upgrading_, c);
        if (c->counted()) uncount_address(c->address());
        if (const auto id = c->id()) {
            connections_.erase(*id);
            // Later: a report may come from inside a session call (a send that overflowed a queue).
            asio::post(context_, [this, id = *id] {
                try {
                    session_.disconnect(id);
                } catch (...) {
                    callback_failed("a disconnect's handling");
                }
                maybe_stopped();
            });
        }
        if (statistics_.open > 0) --statistics_.open;
        maybe_stopped();
    }

  private:
    void accept() {
        acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec != asio::error::operation_aborted && !stopping_) accept();
                return;
            }
            try {
                admit(std::move(socket));
            } catch (...) {
                ++statistics_.other_errors;  // out of memory: this socket is lost, the server goes on
            }
            accept();
        });
    }

    void admit(tcp::socket socket) {
        ++statistics_.sockets_accepted;
        beast::error_code ec;
        if (statistics_.open >= options_.max_connections) {
            ++statistics_.refused_full;
            log_.warning("connection.refused", "a socket was refused: the server has max_connections open",
                         {{"open", std::to_string(statistics_.open)}});
            socket.close(ec);
            return;
        }
        const auto endpoint = socket.remote_endpoint(ec);
        if (ec) {
            ++statistics_.other_errors;  // the peer is gone already
            socket.close(ec);
            return;
        }
        const auto peer = unmapped(endpoint.address());
        // A trusted proxy's own address counts nothing: its clients are counted once their request is read.
        std::string key = trusted_proxy(peer) ? std::string{} : address_key(peer);
        if (!key.empty() && !count_address(key)) {
            ++statistics_.refused_address_full;
            log_.warning("connection.refused", "a socket was refused: its address has all the sockets it may have",
                         {{"address", key}});
            // Before reading a byte: this address has all the sockets it may have. A reset, not a FIN: a
            // storm of refused sockets would otherwise leave the server one TIME_WAIT entry each.
            socket.set_option(asio::socket_base::linger(true, 0), ec);
            socket.close(ec);
            return;
        }
        // The frames of one turn of the loop already leave in one write (CombiningStream): Nagle's algorithm
        // would only hold them until the peer's delayed ACK of the previous write (tens of ms; measured
        // with the hostile load test's players). A socket that refuses the option still works.
        socket.set_option(tcp::no_delay(true), ec);
        ++statistics_.open;
        std::shared_ptr<ServerConnection> c;
        if (tls_) {
            c = tls_->connection(*this, std::move(socket), peer, std::move(key));
        } else {
            c = std::make_shared<BasicServerConnection<beast::tcp_stream>>(*this, peer, std::move(key),
                                                                          std::move(socket));
        }
        upgrading_.push_back(c);
        c->start();
    }

    void uncount_address(const std::string& key) noexcept {
        const auto it = per_address_.find(key);
        if (it == per_address_.end()) return;
        if (--it->second == 0) per_address_.erase(it);  // many addresses come and go: keep only those open
    }

    void schedule_tick() {
        tick_timer_.expires_after(options_.tick_interval);
        tick_timer_.async_wait([this](beast::error_code ec) {
            if (ec || stopping_) return;
            try {
                session_.tick();
            } catch (...) {
                callback_failed("the session's tick");
            }
            return_memory();
            watch_tls();
            schedule_tick();
        });
    }

    // TlsAcceptor::reload_interval: the files are looked at (their modification times) that often, and read
    // again when they changed, so that a renewed certificate is used without a signal or a restart.
    void watch_tls() {
        if (!tls_ || tls_->reload_interval() <= Duration::zero()) return;
        const auto now = Clock::now();
        if (now - tls_checked_ < tls_->reload_interval()) return;
        tls_checked_ = now;
        if (tls_->changed()) (void)reload_tls();
    }

    // malloc_trim walks the whole heap: tens of milliseconds with a thousand connections, a stall in every
    // latency. So only once the traffic has calmed down (the last tick sent less than a sixteenth of the
    // threshold); while it flows, the allocator reuses what was given back anyway.
    void return_memory() noexcept {
        const auto threshold = options_.return_memory_after;
        const auto sent = statistics_.bytes_out - bytes_out_at_tick_;
        bytes_out_at_tick_ = statistics_.bytes_out;
        const auto released = combining_bytes_released.load(std::memory_order_relaxed);
        if (threshold == 0 || released - released_at_trim_ < threshold || sent >= threshold / 16) return;
        released_at_trim_ = released;
        ++statistics_.memory_returns;
#if defined(__GLIBC__)
        (void)::malloc_trim(0);
#endif
    }

    void maybe_stopped() {
        if (stopping_ && connections_.empty() && upgrading_.empty() && statistics_.open == 0) {
            if (!context_.stopped()) log_.info("server.stopped", "the server stopped");
            stop_timer_.cancel();
            context_.stop();
        }
    }

    static SessionOptions with_log(SessionOptions options, const Logger& log) {
        if (!options.log) options.log = log;
        return options;
    }

    WebSocketServerOptions options_;
    asio::io_context context_;
    tcp::acceptor acceptor_;
    asio::steady_timer tick_timer_;
    asio::steady_timer stop_timer_;
    Logger log_;
    Session session_;
    OriginPolicy origins_;
    std::vector<IpNetwork> trusted_;
    std::shared_ptr<TlsAcceptor> tls_;
    TimePoint tls_checked_ = Clock::now();
    std::unordered_map<std::string, std::size_t> per_address_;  // open sockets per address key
    std::unordered_map<ConnectionId, std::shared_ptr<ServerConnection>> connections_;
    std::vector<std::shared_ptr<ServerConnection>> upgrading_;
    std::vector<std::shared_ptr<asio::steady_timer>> user_timers_;
    std::map<std::string, HttpHandler, std::less<>> routes_;
    WebSocketServerStatistics statistics_;
    std::uint16_t port_ = 0;
    bool stopping_ = false;
    std::size_t released_at_trim_ = combining_bytes_released.load();
    std::uint64_t bytes_out_at_tick_ = 0;  // statistics_.bytes_out at the last tick
};

template <class NextLayer>
void BasicServerConnection<NextLayer>::begin() {
    ws_.next_layer().keep_alive(weak_from_this());
    beast::get_lowest_layer(ws_).expires_after(core_->options().handshake_timeout);
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::start() {
    begin();
    read_request();
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::read_request() {
    http::async_read(
        ws_.next_layer(), buffer_, request_,
        [self = me()](beast::error_code ec, std::size_t) { self->on_request(ec); });
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::on_request(beast::error_code ec) {
    if (dead_) return;
    if (ec) {
        ++core_->statistics().handshake_failures;
        finish({});
        return;
    }
    if (!counted_ && !admit_forwarded()) return;
    const std::string_view target{request_.target().data(), request_.target().size()};
    const auto [path, query] = split_target(target);
    if (!websocket::is_upgrade(request_)) {
        if (const auto handler = core_->route(path)) {
            serve_route(*handler, path, query);
            return;
        }
        if (!core_->options().static_files.empty()) {
            serve_static();
            return;
        }
        ++core_->statistics().refused_not_websocket;
        refuse(http::status::bad_request, "expected a WebSocket upgrade");
        return;
    }
    if (!core_->options().path.empty() && path != core_->options().path) {
        ++core_->statistics().refused_path;
        refuse(http::status::bad_request, "wrong path");
        return;
    }
    if (!origin_allowed()) {
        ++core_->statistics().refused_origin;
        core_->log().info("connection.refused", "an upgrade from an origin that is not allowed was refused (403)",
                          {{"origin", std::string{request_[http::field::origin]}}, {"address", address_}});
        refuse(http::status::forbidden, "origin not allowed");
        return;
    }
    beast::get_lowest_layer(ws_).expires_never();  // the WebSocket's own timeouts take over
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = core_->options().handshake_timeout;
    const auto ping = core_->options().ping_interval;
    timeout.idle_timeout = ping > Duration::zero() ? ping : websocket::stream_base::none();
    timeout.keep_alive_pings = ping > Duration::zero();
    ws_.set_option(timeout);
    ws_.read_message_max(core_->options().max_message_bytes);
    ws_.auto_fragment(false);
    ws_.async_accept(request_, [self = me()](beast::error_code e) { self->on_accept(e); });
}

// A request from a trusted proxy: the client is the one X-Forwarded-For names, and counts from now on. False
// when it has all its sockets already (answered 429).
template <class NextLayer>
bool BasicServerConnection<NextLayer>::admit_forwarded() {
    auto& stats = core_->statistics();
    std::string header;
    bool present = false;
    const auto fields = request_.equal_range("X-Forwarded-For");
    for (auto it = fields.first; it != fields.second; ++it) {
        if (present) header += ',';  // several fields are one list
        present = true;
        header.append(it->value().data(), it->value().size());
    }
    std::optional<IpAddress> client;
    const auto trusted = [this](const IpAddress& a) {
        return core_->trusted_proxy(a);
    };
    if (present) client = forwarded_client(header, trusted);
    if (!client) {
        ++stats.forwarded_invalid;
        client = peer_;
    }
    auto key = address_key(*client);
    if (!core_->count_address(key)) {
        ++stats.refused_address_full;
        core_->log().warning("connection.refused", "a request was refused (429): its address has all the sockets it may have",
                             {{"address", key}});
        refuse(http::status::too_many_requests, "too many connections from this address");
        return false;
    }
    address_ = std::move(key);
    counted_ = true;
    return true;
}

template <class NextLayer>
bool BasicServerConnection<NextLayer>::origin_allowed() const {
    const auto& policy = core_->origins();
    if (!policy.checks()) return true;
    const auto count = request_.count(http::field::origin);
    if (count == 0) return true;  // not a browser: browsers always send one
    if (count > 1) return false;
    const auto origin = request_[http::field::origin];
    const auto host = request_[http::field::host];
    return policy.allows({origin.data(), origin.size()}, {host.data(), host.size()});
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::refuse(http::status status, std::string body) {
    auto response = std::make_shared<http::response<http::string_body>>(status, request_.version());
    response->set(http::field::content_type, "text/plain");
    if (status == http::status::method_not_allowed) response->set(http::field::allow, "GET, HEAD");
    response->body() = std::move(body);
    response->prepare_payload();
    respond(std::move(response));
}

// One answer per connection (no keep-alive): a page's few files do not need it, and every socket then
// has one simple life, counted like the others.
template <class NextLayer>
void BasicServerConnection<NextLayer>::respond(std::shared_ptr<http::response<http::string_body>> response) {
    response_ = std::move(response);
    response_->keep_alive(false);
    // Straight to the socket: the connection is dropped as soon as the response is written.
    http::async_write(ws_.next_layer().next_layer(), *response_,
                      [self = me()](beast::error_code, std::size_t) { self->finish({}); });
}

template <class NextLayer>
bool BasicServerConnection<NextLayer>::refused_method() {
    const auto method = request_.method();
    if (method == http::verb::get || method == http::verb::head) return false;
    ++core_->statistics().http_refused;
    refuse(http::status::method_not_allowed, "method not allowed");
    return true;
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::serve_static() {
    auto& stats = core_->statistics();
    const auto method = request_.method();
    if (refused_method()) return;
    const std::string_view target{request_.target().data(), request_.target().size()};
    auto resolved = resolve_static_file(core_->options().static_files, target);
    if (const auto* refusal = std::get_if<StaticRefusal>(&resolved)) {
        ++stats.http_refused;
        refuse(static_cast<http::status>(refusal->status), refusal->reason);
        return;
    }
    const auto& file = std::get<StaticFile>(resolved);
    std::error_code ec;
    const auto size = std::filesystem::file_size(file.path, ec);
    if (ec || size > core_->options().max_static_file_bytes) {
        ++stats.http_refused;
        refuse(http::status::internal_server_error, "file not served");
        return;
    }
    std::string body;
    if (method == http::verb::get) {
        std::ifstream in{file.path, std::ios::binary};
        body.assign(std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{});
        if (!in && !in.eof()) {
            ++stats.http_refused;
            refuse(http::status::internal_server_error, "file not served");
            return;
        }
    }
    auto response = std::make_shared<http::response<http::string_body>>(http::status::ok, request_.version());
    response->set(http::field::content_type, std::string{file.content_type});
    response->set(http::field::cache_control, "no-cache");
    response->set("X-Content-Type-Options", "nosniff");
    if (method == http::verb::head) {
        response->content_length(size);  // what a GET would send; no body
    } else {
        response->body() = std::move(body);
        response->prepare_payload();
    }
    ++stats.http_files_served;
    respond(std::move(response));
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::serve_route(const HttpHandler& handler, std::string_view path, std::string_view query) {
    auto& stats = core_->statistics();
    const auto method = request_.method();
    if (refused_method()) return;
    HttpResponse answer;
    try {
        const auto verb = http::to_string(method);
        answer = handler(HttpRequest{{verb.data(), verb.size()}, path, query,
                                     [this](std::string_view name) -> std::optional<std::string_view> {
                                         const auto it = request_.find(beast::string_view{name.data(), name.size()});
                                         if (it == request_.end()) return std::nullopt;
                                         return std::string_view{it->value().data(), it->value().size()};
                                     }});
    } catch (...) {
        core_->callback_failed("an HTTP route");
        answer = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n"};
    }
    ++stats.http_routes_served;
    auto response = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(answer.status),
                                                                        request_.version());
    response->set(http::field::content_type, answer.content_type);
    response->set(http::field::cache_control, "no-store");
    for (auto& [name, value] : answer.headers) response->set(name, value);
    if (method == http::verb::head) {
        response->content_length(answer.body.size());
    } else {
        response->body() = std::move(answer.body);
        response->prepare_payload();
    }
    respond(std::move(response));
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::on_accept(beast::error_code ec) {
    if (dead_) return;
    if (ec) {
        ++core_->statistics().handshake_failures;
        finish({});
        return;
    }
    const std::string_view target{request_.target().data(), request_.target().size()};
    if (!query_satisfies(split_target(target).second, core_->options().query)) {
        ++core_->statistics().refused_query;
        finish({});  // dropped without a close frame (code 1006 at the peer), as @krmx/server does
        return;
    }
    request_ = {};
    buffer_ = {};
    ws_.text(true);
    id_ = core_->opened(shared_from_this());
    window_start_ = Clock::now();
    read();
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::read() {
    ws_.async_read(
        buffer_, [self = me()](beast::error_code ec, std::size_t n) { self->on_read(ec, n); });
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::on_read(beast::error_code ec, std::size_t bytes) {
    if (dead_) return;
    auto& stats = core_->statistics();
    if (ec) {
        if (ec == websocket::error::message_too_big) {
            ++stats.oversized_frames;
            core_->log().warning("connection.oversized_frame", "a peer sent a frame over max_message_bytes and is closed (1009)",
                                 {{"address", address_}});
        } else if (ec == websocket::error::bad_frame_payload) {
            ++stats.invalid_utf8;
        } else if (ec == beast::error::timeout) {
            ++stats.missed_pongs;
        } else if (tls_error(ec)) {
            ++stats.tls_errors;  // malformed records, a peer that cut the TLS stream short, ...
        } else if (ec != websocket::error::closed && ec != asio::error::eof &&
                   ec != asio::error::operation_aborted) {
            ++stats.other_errors;
        }
        finish({});
        return;
    }
    ++stats.frames_in;
    stats.bytes_in += bytes;
    if (!ws_.got_text()) {
        ++stats.binary_frames;
        core_->log().warning("connection.binary_frame", "a peer sent a binary frame and is closed (1003)", {{"address", address_}});
        close_violation(websocket::close_code::unknown_data);
        return;
    }
    const auto limit = core_->options().max_frames_per_second;
    if (limit > 0) {
        const auto now = Clock::now();
        if (now - window_start_ >= std::chrono::seconds{1}) {
            window_start_ = now;
            window_frames_ = 0;
        }
        if (++window_frames_ > limit) {
            ++stats.floods;
            core_->log().warning("connection.flood", "a peer sent more than max_frames_per_second and is closed (1008)",
                                 {{"address", address_}});
            close_violation(websocket::close_code::policy_error);
            return;
        }
    }
    const auto data = buffer_.cdata();
    core_->receive(*id_, std::string_view{static_cast<const char*>(data.data()), data.size()});
    buffer_.consume(buffer_.size());
    if (buffer_.capacity() > 64 * 1024) buffer_.shrink_to_fit();  // idle connections stay small
    if (!dead_ && !closing_) read();
}

// The server writes its text frames itself (detail::TextFrameHeader) into the connection's combining
// buffer: Beast's write operation per frame and per connection cost more than the broadcast's copy, and
// a queue of frames waiting for Beast held far more memory than their bytes. Beast still writes the
// control frames (pings, pongs, close) into the same buffer, each whole, so frames never interleave. Beast
// never writes a data frame here, so no fragmented message of its own can be in progress.
template <class NextLayer>
void BasicServerConnection<NextLayer>::enqueue(const SharedText& text) {
    // Not after Beast has begun a close (its own, or the answer to the peer's): no data after a close frame.
    if (dead_ || closing_ || !ws_.is_open()) return;
    auto& out = ws_.next_layer();
    const TextFrameHeader header{text->size()};
    if (out.unflushed_bytes() + header.size() + text->size() > core_->options().max_queued_bytes) {
        const auto keep = shared_from_this();  // the core lets go of this connection in finish()
        ++core_->statistics().slow_readers;
        core_->log().warning("connection.slow_reader", "a peer that does not read passed max_queued_bytes and is dropped",
                             {{"address", address_}});
        terminate();
        finish({});
        return;
    }
    if (!out.write_frame(header.view(), text)) {
        const auto keep = shared_from_this();
        ++core_->statistics().other_errors;  // the socket refused an earlier write
        finish({});
        return;
    }
    ++core_->statistics().frames_out;
    core_->statistics().bytes_out += header.size() + text->size();
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::close_after_flush(websocket::close_code code) {
    if (dead_ || closing_) return;
    closing_ = true;
    // After every frame already in the buffer. (Known: when Beast's keep-alive timer has expired and its
    // handler is already queued, Beast takes it for a close timeout and drops the socket without the close
    // frame; the peer sees 1006. See the link-deadline test in tests/net/websocket_tests.cpp.)
    ws_.async_close(code, [self = me()](beast::error_code) { self->finish({}); });
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::close_violation(websocket::close_code code) {
    if (dead_ || closing_) return;
    websocket::stream_base::timeout timeout{};
    ws_.get_option(timeout);
    // Beast times the close handshake with handshake_timeout, set when the close begins.
    timeout.handshake_timeout = std::min<Duration>(core_->options().handshake_timeout, violation_close_deadline);
    ws_.set_option(timeout);
    close_after_flush(code);
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::terminate() noexcept {
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::abort() {
    terminate();
    finish({});
}

template <class NextLayer>
void BasicServerConnection<NextLayer>::finish(beast::error_code) {
    if (dead_) return;
    dead_ = true;
    terminate();
    core_->closed(shared_from_this());
}

#ifdef KRMX_NET_SEPARATE_COMPILATION
// Compiled once, in the translation unit that includes krmx/net/separate_compilation.hpp.
extern template class BasicServerConnection<beast::tcp_stream>;
#endif

}  // namespace detail

class WebSocketServer {
  public:
    /// Binds and listens at once (throws boost::system::system_error when it cannot); serves on run().
    explicit WebSocketServer(WebSocketServerOptions options = {}, DomainHostOptions host = {})
        : core_(std::make_unique<detail::WebSocketServerCore>(std::move(options))),
          host_(std::make_unique<DomainHost>(*this, host)) {
        if (core_->options().health) serve_health();
    }
    WebSocketServer(const WebSocketServer&) = delete;
    WebSocketServer& operator=(const WebSocketServer&) = delete;

    /// The port it listens on (the one picked when the options said 0).
    [[nodiscard]] std::uint16_t port() const noexcept { return core_->port(); }

    /// Serves on the calling thread until stop() has finished. Everything below, except post() and
    /// stop(), must be called on this thread (from callbacks, posted functions, timers) or before run().
    void run() { core_->context().run(); }
    /// Runs for at most `d` (tests and games with their own loop).
    void run_for(Duration d) { core_->context().run_for(d); }
    /// From any thread: runs `f` on the server's thread (a function that throws is counted in
    /// statistics().callback_errors; the loop survives the game's mistakes).
    void post(std::function<void()> f) {
        boost::asio::post(core_->context(), [core = core_.get(), f = std::move(f)] {
            try {
                f();
            } catch (...) {
                core->callback_failed("a function given to post()");
            }
        });
    }
    /// From any thread: graceful stop. Every user leaves (frames as @krmx/server's close), queued frames
    /// are flushed (for up to stop_timeout), every connection gets a close frame (1001), run() returns.
    void stop() {
        boost::asio::post(core_->context(), [this] { core_->stop(); });
    }
    /// From any thread: reads the TLS certificate and key files again (options().tls) on the server's thread.
    /// New connections then use the new certificate; open ones keep theirs. The future says whether it
    /// worked: false without TLS, or when a file is unreadable, invalid or the key does not match, in which
    /// case the old certificate stays in use, statistics().tls_reload_failures counts it and the log says
    /// why (event tls.reload_failed). The future is ready only once the server runs that: do not wait for
    /// it on the server's own thread. (counter_server reloads on SIGHUP; TlsServerOptions::reload_interval
    /// does it by itself when the files change.)
    [[nodiscard]] std::future<bool> reload_tls() {
        auto promise = std::make_shared<std::promise<bool>>();
        auto result = promise->get_future();
        boost::asio::post(core_->context(), [core = core_.get(), promise] {
            bool ok = false;
            try {
                ok = core->reload_tls();
            } catch (...) {
                ++core->statistics().callback_errors;  // out of memory: the old certificate stays
            }
            promise->set_value(ok);
        });
        return result;
    }
    /// On the server's thread: `f` after `delay` (skipped when the server stops first).
    void after(Duration delay, std::function<void()> f) { core_->after(delay, std::move(f)); }
    /// The io_context everything runs on, for the game's own timers and sockets.
    [[nodiscard]] boost::asio::io_context& context() noexcept { return core_->context(); }

    /// The session layer: users, kick, hooks (join, leave, ...), its statistics.
    [[nodiscard]] Session& session() noexcept { return core_->session(); }
    /// The host of this server's domains: `krmx::StreamDomain counter{server, "counter", model}` attaches to it.
    [[nodiscard]] DomainHost& host() noexcept { return *host_; }
    [[nodiscard]] const WebSocketServerStatistics& statistics() const noexcept { return core_->statistics(); }
    [[nodiscard]] const WebSocketServerOptions& options() const noexcept { return core_->options(); }
    /// The server's log (WebSocketServerOptions::log), for the game's own notable events.
    [[nodiscard]] const Logger& log() const noexcept { return core_->log(); }
    /// Outgoing bytes that the connections' sockets have not taken yet, over all connections.
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return core_->queued_bytes(); }

    /// Plain GET/HEAD requests for exactly `path` ("/metrics") are answered by `handler` from now on (see
    /// net/http_route.hpp); replaces the path's route if it had one.
    void serve_http(std::string path, HttpHandler handler) { core_->serve_http(std::move(path), std::move(handler)); }
    void stop_serving_http(std::string_view path) { core_->stop_serving_http(path); }

    /// What tells whether the application can serve: nothing when it can, else why not ("no database
    /// connection"). Run on the server's thread at every /readyz request, so it must not block: report what
    /// the application already knows. One that throws counts as not ready (readiness_check_errors).
    using ReadinessCheck = std::function<std::optional<std::string>()>;
    void add_readiness_check(std::string name, ReadinessCheck check) {
        readiness_checks_.emplace_back(std::move(name), std::move(check));
    }
    /// What keeps the server from being ready, one line each: it is stopping, a domain's (DomainHost::not_ready),
    /// a readiness check's. Empty: ready.
    [[nodiscard]] std::vector<std::string> not_ready() {
        std::vector<std::string> out;
        if (core_->stopping()) out.emplace_back("server: stopping");
        for (auto& line : host_->not_ready()) out.push_back(std::move(line));
        for (const auto& [name, check] : readiness_checks_) {
            try {
                if (auto why = check()) out.push_back(name + ": " + *why);
            } catch (const std::exception& e) {
                ++core_->statistics().readiness_check_errors;
                out.push_back(name + ": check failed: " + e.what());
            } catch (...) {
                ++core_->statistics().readiness_check_errors;
                out.push_back(name + ": check failed");
            }
        }
        // One line each, whatever a store's error message holds.
        for (auto& line : out) {
            std::replace_if(line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
        }
        return out;
    }

    // krmx::ServerTransport, through the session.
    Subscription on_link(UserCallback f) { return session().on_link(std::move(f)); }
    Subscription on_unlink(UserCallback f) { return session().on_unlink(std::move(f)); }
    Subscription on_message(UserMessageCallback f) { return session().on_message(std::move(f)); }
    void send(std::string_view username, std::string text) { session().send(username, std::move(text)); }
    void send(std::string_view username, const SharedText& text) { session().send(username, text); }
    void broadcast(std::string text) { session().broadcast(std::move(text)); }
    [[nodiscard]] bool has_feature(std::string_view username, std::string_view feature) const {
        return core_->session().has_feature(username, feature);
    }

  private:
    void serve_health() {
        serve_http("/healthz", [](const HttpRequest&) { return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
        serve_http("/readyz", [this](const HttpRequest&) {
            const auto problems = not_ready();
            if (problems.empty()) return HttpResponse{200, "text/plain; charset=utf-8", "ready\n"};
            std::string body = "not ready\n";
            for (const auto& line : problems) body += line + "\n";
            return HttpResponse{503, "text/plain; charset=utf-8", std::move(body)};
        });
    }

    std::unique_ptr<detail::WebSocketServerCore> core_;
    std::unique_ptr<DomainHost> host_;
    std::vector<std::pair<std::string, ReadinessCheck>> readiness_checks_;
};

static_assert(ServerTransport<WebSocketServer>);

}  // namespace krmx::net

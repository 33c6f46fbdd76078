#pragma once
// krmx::net::WebSocketClient: a Krmx client on Boost.Beast WebSockets (the C++ side of @krmx/client).
// A krmx::ClientTransport and krmx::TickingTransport, so a StreamClient runs on it unchanged. No threads
// inside: it owns an io_context that runs only inside connect() and the run_*() calls, so every callback
// fires on the caller's thread. Needs the krmx::websocket CMake target.
//
//   krmx::net::WebSocketClient client;
//   krmx::StreamClient counter{client, "counter", counter::model()};
//   client.connect("127.0.0.1", 8082);                 // throws when it cannot connect
//   client.link("alice");                              // krmx/link with the client's version
//   client.run_until([&] { return client.linked(); }, 5s);
//   (void)counter.dispatch(counter::increment(1));
//   client.run_for(100ms);
//
// The session as @krmx/client sees it (krmx::net::ClientSession, which the in-process test hub's clients
// run too): on_link fires on `krmx/accepted` (before the history that follows), on_unlink on its own
// `krmx/unlinked` or when the connection is lost; custom messages reach on_message only while linked (as
// @krmx/client drops them otherwise); rejections are reported with the server's reason. After a lost
// connection, connect() again and link() again: the stream rebuilds from the history.
//
// TLS (wss): set `tls` to krmx::net::tls_client({.ca_file = ...}) from krmx/net/tls.hpp (target krmx::tls),
// then connect() or connect_url("wss://host:port/path"). The server's certificate is verified against the
// CA file (or the system's) and must name the host; the host name goes out as SNI. This header never
// includes OpenSSL, so a client without TLS needs neither its headers nor its libraries.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/net/client_session.hpp"
#include "krmx/net/session.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::net {

namespace detail {

// One connection's WebSocket, whatever carries its bytes (plain TCP here, TLS in tls.hpp): the client's
// few operations, behind virtual calls so that this header needs no OpenSSL.
class ClientConnection {
  public:
    using Done = std::function<void(boost::beast::error_code)>;
    using Transferred = std::function<void(boost::beast::error_code, std::size_t)>;

    ClientConnection() = default;
    ClientConnection(const ClientConnection&) = delete;
    ClientConnection& operator=(const ClientConnection&) = delete;
    virtual ~ClientConnection() = default;

    [[nodiscard]] virtual boost::beast::tcp_stream& tcp() noexcept = 0;
    virtual void set_timeout(const boost::beast::websocket::stream_base::timeout& timeout) = 0;
    /// After the TCP connect: the TLS handshake with `host` (TLS only), then the upgrade.
    virtual void async_handshake(const std::string& host, const std::string& host_header, const std::string& target,
                                 Done done) = 0;
    virtual void async_write_text(boost::asio::const_buffer text, Transferred done) = 0;
    virtual void async_read(boost::beast::flat_buffer& buffer, Transferred done) = 0;
    virtual void async_close(boost::beast::websocket::close_code code, Done done) = 0;
    virtual void read_message_max(std::size_t bytes) = 0;
};

template <class NextLayer>
class BasicClientConnection : public ClientConnection {
  public:
    template <class... Layer>
    explicit BasicClientConnection(Layer&&... layer) : ws_(std::forward<Layer>(layer)...) {}

    [[nodiscard]] boost::beast::tcp_stream& tcp() noexcept final { return boost::beast::get_lowest_layer(ws_); }
    void set_timeout(const boost::beast::websocket::stream_base::timeout& timeout) final;
    void async_handshake(const std::string& host, const std::string& host_header, const std::string& target,
                         Done done) override;
    void async_write_text(boost::asio::const_buffer text, Transferred done) final;
    void async_read(boost::beast::flat_buffer& buffer, Transferred done) final;
    void async_close(boost::beast::websocket::close_code code, Done done) final;
    void read_message_max(std::size_t bytes) final;

  protected:
    boost::beast::websocket::stream<NextLayer> ws_;
};

// Defined outside the class, so that KRMX_NET_SEPARATE_COMPILATION's `extern template` keeps them (and Beast's
// templates under them) out of every translation unit but one (krmx/net/separate_compilation.hpp).
template <class NextLayer>
void BasicClientConnection<NextLayer>::set_timeout(const boost::beast::websocket::stream_base::timeout& timeout) {
    ws_.set_option(timeout);
}

template <class NextLayer>
void BasicClientConnection<NextLayer>::async_handshake(const std::string&, const std::string& host_header,
                                                       const std::string& target, Done done) {
    ws_.async_handshake(host_header, target, std::move(done));
}

template <class NextLayer>
void BasicClientConnection<NextLayer>::async_write_text(boost::asio::const_buffer text, Transferred done) {
    ws_.text(true);
    ws_.async_write(text, std::move(done));
}

template <class NextLayer>
void BasicClientConnection<NextLayer>::async_read(boost::beast::flat_buffer& buffer, Transferred done) {
    ws_.async_read(buffer, std::move(done));
}

template <class NextLayer>
void BasicClientConnection<NextLayer>::async_close(boost::beast::websocket::close_code code, Done done) {
    ws_.async_close(code, std::move(done));
}

template <class NextLayer>
void BasicClientConnection<NextLayer>::read_message_max(std::size_t bytes) {
    ws_.read_message_max(bytes);
}

#ifdef KRMX_NET_SEPARATE_COMPILATION
extern template class BasicClientConnection<boost::beast::tcp_stream>;
#endif

// Makes TLS connections for a client: krmx/net/tls.hpp implements it (krmx::net::tls_client).
class TlsConnector {
  public:
    TlsConnector() = default;
    TlsConnector(const TlsConnector&) = delete;
    TlsConnector& operator=(const TlsConnector&) = delete;
    virtual ~TlsConnector() = default;
    [[nodiscard]] virtual std::unique_ptr<ClientConnection> connection(boost::asio::io_context& context) = 0;
};

}  // namespace detail

struct WebSocketClientOptions {
    /// The version and the features sent in krmx/link.
    ClientSessionOptions session = {};
    /// Incoming frames longer than this close the connection (histories can be long).
    std::size_t max_message_bytes = std::size_t{64} << 20;
    /// How often on_tick fires while the client runs (StreamClient expires pending events on it).
    Duration tick_interval = std::chrono::milliseconds{100};
    /// connect() gives up after this.
    Duration connect_timeout = std::chrono::seconds{5};
    /// TLS (wss): krmx::net::tls_client() from krmx/net/tls.hpp (target krmx::tls). Empty: plain ws; then
    /// connect_url("wss://...") throws std::invalid_argument.
    std::shared_ptr<detail::TlsConnector> tls = {};
};

struct WebSocketClientStatistics {
    std::uint64_t connects = 0;
    std::uint64_t disconnects = 0;  ///< lost or closed connections
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out = 0;
    std::uint64_t dropped_sends = 0;  ///< send() while not linked
    // Rejections and ignored frames: session().statistics().
};

class WebSocketClient {
  public:
    explicit WebSocketClient(WebSocketClientOptions options = {})
        : options_(std::move(options)), session_(options_.session), tick_timer_(context_) {}
    WebSocketClient(const WebSocketClient&) = delete;
    WebSocketClient& operator=(const WebSocketClient&) = delete;
    ~WebSocketClient() {
        if (ws_) terminate();
    }

    /// Opens a connection (TCP, TLS when options().tls is set, and the WebSocket upgrade to `target`, e.g. "/"
    /// or "/krmx?version=1"). Throws std::runtime_error when that fails (also: a certificate that does not
    /// verify) or takes longer than connect_timeout. Closes an open one first.
    void connect(const std::string& host, std::uint16_t port, const std::string& target = "/") {
        open(host, port, target, options_.tls != nullptr);
    }

    /// connect() to "ws://host[:port][/path]" or "wss://host[:port][/path]" (ports 80 and 443 by default; an
    /// IPv6 address in brackets). wss needs options().tls. Throws std::invalid_argument for other URLs.
    void connect_url(std::string_view url) {
        bool secure = false;
        if (url.starts_with("wss://")) {
            secure = true;
            url.remove_prefix(6);
        } else if (url.starts_with("ws://")) {
            url.remove_prefix(5);
        } else {
            throw std::invalid_argument("krmx::net::WebSocketClient: not a ws:// or wss:// URL: " + std::string{url});
        }
        if (secure && !options_.tls) {
            throw std::invalid_argument(
                "krmx::net::WebSocketClient: wss:// needs WebSocketClientOptions::tls (krmx/net/tls.hpp: tls_client())");
        }
        const auto slash = url.find_first_of("/?");
        const std::string target = slash == std::string_view::npos ? "/" : std::string{url.substr(slash)};
        std::string_view authority = url.substr(0, slash);
        std::string_view host = authority;
        std::string_view port;
        if (authority.starts_with('[')) {
            const auto close = authority.find(']');
            if (close == std::string_view::npos) throw std::invalid_argument("krmx::net::WebSocketClient: bad URL");
            host = authority.substr(1, close - 1);
            if (close + 1 < authority.size() && authority[close + 1] == ':') port = authority.substr(close + 2);
        } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
            host = authority.substr(0, colon);
            port = authority.substr(colon + 1);
        }
        unsigned long number = secure ? 443 : 80;
        if (!port.empty()) {
            const std::string digits{port};
            if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 5 ||
                (number = std::stoul(digits)) == 0 || number > 65535) {
                throw std::invalid_argument("krmx::net::WebSocketClient: bad port in " + std::string{authority});
            }
        }
        if (host.empty()) throw std::invalid_argument("krmx::net::WebSocketClient: no host in the URL");
        open(std::string{host}, static_cast<std::uint16_t>(number), target, secure);
    }

  private:
    void open(const std::string& host, std::uint16_t port, const std::string& target, bool secure) {
        if (ws_) disconnect();
        namespace beast = boost::beast;
        std::unique_ptr<detail::ClientConnection> ws;
        if (secure) {
            ws = options_.tls->connection(context_);
        } else {
            ws = std::make_unique<detail::BasicClientConnection<beast::tcp_stream>>(context_);
        }
        boost::asio::ip::tcp::resolver resolver{context_};
        beast::error_code ec;
        const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
        if (ec)
            throw std::runtime_error("krmx::net::WebSocketClient: cannot resolve " + host + ": " +
                                     ec.message());
        auto& tcp = ws->tcp();
        tcp.expires_after(options_.connect_timeout);
        bool done = false;
        tcp.async_connect(endpoints, [&](beast::error_code e, const auto&) {
            ec = e;
            done = true;
        });
        run_until_flag(done);
        if (!ec) {
            tcp.expires_never();
            // Small frames must leave at once: Nagle's algorithm would hold an append until the server's
            // delayed ACK of the previous one (tens of ms).
            tcp.socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
            ec = {};  // a socket that refuses the option still works, only later
            beast::websocket::stream_base::timeout timeout =
                beast::websocket::stream_base::timeout::suggested(beast::role_type::client);
            timeout.handshake_timeout = options_.connect_timeout;
            ws->set_timeout(timeout);
            ws->read_message_max(options_.max_message_bytes);
            done = false;
            // The TLS handshake (when secure) falls under connect_timeout too.
            tcp.expires_after(options_.connect_timeout);
            ws->async_handshake(host, host + ":" + std::to_string(port), target, [&](beast::error_code e) {
                ec = e;
                done = true;
            });
            run_until_flag(done);
            tcp.expires_never();
        }
        if (ec) {
            throw std::runtime_error("krmx::net::WebSocketClient: cannot connect to " + host + ":" +
                                     std::to_string(port) + target + ": " + ec.message());
        }
        ws_ = std::move(ws);
        ++generation_;
        ++statistics_.connects;
        read();
        schedule_tick();
    }

  public:
    /// Asks to link as `username`, with an optional auth token. The answer comes while the client runs.
    void link(std::string username, std::optional<std::string> auth = std::nullopt) {
        write(session_.link_frame(std::move(username), auth));
    }
    void unlink() { write(ClientSession::unlink_frame()); }
    void leave() { write(ClientSession::leave_frame()); }
    /// Closes the connection politely (close frame), waiting briefly for the server's answer.
    void disconnect() {
        if (!ws_) return;
        bool done = false;
        ws_->async_close(boost::beast::websocket::close_code::normal,
                         [&done](boost::beast::error_code) { done = true; });
        run_until_flag(done, std::chrono::seconds{2});
        if (ws_) lost();
    }
    /// Drops the TCP connection without a close frame (a crashed client, as far as the server knows).
    void terminate() {
        if (!ws_) return;
        boost::beast::error_code ignored;
        auto& socket = ws_->tcp().socket();
        socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        lost();
    }

    /// Runs the client's I/O (callbacks fire here).
    void run_for(Duration d) {
        context_.restart();
        context_.run_for(d);
    }
    void poll() {
        context_.restart();
        context_.poll();
    }
    /// Runs until `done()` is true (checked after every handler) or `timeout` passed; returns done().
    template <class Predicate>
    bool run_until(Predicate&& done, Duration timeout) {
        const auto until = Clock::now() + timeout;
        context_.restart();
        while (!done()) {
            const auto now = Clock::now();
            if (now >= until) return done();
            if (context_.run_one_for(until - now) == 0 && context_.stopped()) {
                context_.restart();  // nothing to wait for: wait for time, not in a busy loop
                std::this_thread::sleep_for(std::min<Duration>(until - now, std::chrono::milliseconds{1}));
            }
        }
        return true;
    }

    [[nodiscard]] bool connected() const noexcept { return ws_ != nullptr; }
    [[nodiscard]] bool linked() const noexcept { return session_.linked(); }
    /// The username this client is linked as.
    [[nodiscard]] const std::optional<std::string>& username() const noexcept { return session_.username(); }
    /// The reason of the last `krmx/rejected`, until the next link().
    [[nodiscard]] const std::optional<std::string>& last_rejection() const noexcept {
        return session_.last_rejection();
    }
    /// Users as the session frames told this client, in the order it learned of them.
    [[nodiscard]] const std::vector<ClientUser>& users() const noexcept { return session_.users(); }
    /// Every `krmx/*` frame received, in order (for tests and tools); clear it when you like.
    [[nodiscard]] std::vector<std::string>& session_frames() noexcept { return session_.session_frames(); }
    /// The session as this client sees it: users, rejections, ignored frames.
    [[nodiscard]] ClientSession& session() noexcept { return session_; }
    [[nodiscard]] const WebSocketClientStatistics& statistics() const noexcept { return statistics_; }
    /// How many times a callback (on_link, on_unlink, on_message, on_rejected, on_tick, on_close) threw: each
    /// is counted and skipped, the client goes on.
    [[nodiscard]] std::uint64_t callback_errors() const noexcept {
        return session_.callback_errors() + on_tick_.errors() + on_close_.errors();
    }
    [[nodiscard]] boost::asio::io_context& context() noexcept { return context_; }

    /// `f(std::string_view reason)`: a link attempt was rejected.
    Subscription on_rejected(std::function<void(std::string_view)> f) { return session_.on_rejected(std::move(f)); }
    /// `f()`: the connection is gone (after on_unlink when it was linked).
    Subscription on_close(NoticeCallback f) { return on_close_.connect(std::move(f)); }

    // krmx::ClientTransport and krmx::TickingTransport
    Subscription on_link(UserCallback f) { return session_.on_link(std::move(f)); }
    Subscription on_unlink(NoticeCallback f) { return session_.on_unlink(std::move(f)); }
    Subscription on_message(MessageCallback f) { return session_.on_message(std::move(f)); }
    Subscription on_tick(NoticeCallback f) { return on_tick_.connect(std::move(f)); }
    /// A custom message to the server; dropped (and counted) while not linked, as @krmx/client refuses it.
    void send(std::string text) {
        if (!linked()) {
            ++statistics_.dropped_sends;
            return;
        }
        write(std::move(text));
    }

  private:
    using Ws = detail::ClientConnection;

    void run_until_flag(const bool& flag, Duration timeout = std::chrono::hours{1}) {
        (void)run_until([&flag] { return flag; }, timeout);
    }

    void write(std::string text) {
        if (!ws_) {
            ++statistics_.dropped_sends;
            return;
        }
        queue_.push_back(std::make_shared<const std::string>(std::move(text)));
        if (!writing_) write_next();
    }
    void write_next() {
        if (queue_.empty() || !ws_) {
            writing_ = false;
            return;
        }
        writing_ = true;
        ws_->async_write_text(boost::asio::buffer(*queue_.front()), [this, g = generation_, keep = queue_.front()](
                                                                   boost::beast::error_code ec, std::size_t) {
            if (g != generation_) return;
            if (ec) {
                lost();
                return;
            }
            ++statistics_.frames_out;
            queue_.pop_front();
            write_next();
        });
    }

    void read() {
        ws_->async_read(buffer_, [this, g = generation_](boost::beast::error_code ec, std::size_t) {
            if (g != generation_) return;
            if (ec) {
                lost();
                return;
            }
            ++statistics_.frames_in;
            const auto data = buffer_.cdata();
            const std::string text{static_cast<const char*>(data.data()), data.size()};
            buffer_.consume(buffer_.size());
            session_.receive(text);
            if (ws_ && g == generation_) read();
        });
    }

    void schedule_tick() {
        tick_timer_.expires_after(options_.tick_interval);
        tick_timer_.async_wait([this, g = generation_](boost::beast::error_code ec) {
            if (ec || g != generation_ || !ws_) return;
            on_tick_.emit();
            schedule_tick();
        });
    }

    void lost() {
        if (!ws_) return;
        ++generation_;
        ++statistics_.disconnects;
        boost::beast::error_code ignored;
        ws_->tcp().socket().close(ignored);
        tick_timer_.cancel();
        // The stream may still be referenced by a handler being unwound: keep it until the next connect.
        retired_.push_back(std::move(ws_));
        if (retired_.size() > 4) retired_.erase(retired_.begin());
        queue_.clear();
        writing_ = false;
        buffer_.consume(buffer_.size());
        session_.lost();
        on_close_.emit();
    }

    WebSocketClientOptions options_;
    ClientSession session_;
    boost::asio::io_context context_{1};
    boost::asio::steady_timer tick_timer_;
    std::unique_ptr<Ws> ws_;
    std::vector<std::unique_ptr<Ws>> retired_;
    boost::beast::flat_buffer buffer_;
    std::deque<SharedText> queue_;
    bool writing_ = false;
    std::uint64_t generation_ = 0;
    WebSocketClientStatistics statistics_;
    krmx::detail::Signal<> on_tick_;
    krmx::detail::Signal<> on_close_;
};

static_assert(ClientTransport<WebSocketClient> && TickingTransport<WebSocketClient>);

}  // namespace krmx::net

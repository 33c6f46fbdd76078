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
// The session as @krmx/client sees it: on_link fires on `krmx/accepted` (before the history that
// follows), on_unlink on its own `krmx/unlinked` or when the connection is lost; custom messages reach
// on_message only while linked (as @krmx/client drops them otherwise); rejections are reported with the
// server's reason. After a lost connection, connect() again and link() again: the stream rebuilds from
// the history.

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
#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/net/session.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::net {

struct WebSocketClientOptions {
    /// The version sent in krmx/link (servers check its major.minor).
    std::string version = "0.5.4";
    /// Incoming frames longer than this close the connection (histories can be long).
    std::size_t max_message_bytes = std::size_t{64} << 20;
    /// How often on_tick fires while the client runs (StreamClient expires pending events on it).
    Duration tick_interval = std::chrono::milliseconds{100};
    /// connect() gives up after this.
    Duration connect_timeout = std::chrono::seconds{5};
};

struct WebSocketClientStatistics {
    std::uint64_t connects = 0;
    std::uint64_t disconnects = 0;  ///< lost or closed connections
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out = 0;
    std::uint64_t rejections = 0;
    std::uint64_t dropped_sends = 0;     ///< send() while not linked
    std::uint64_t ignored_messages = 0;  ///< custom messages while not linked, unparsable frames
};

/// A user as this client knows it from the session frames.
struct ClientUser {
    std::string username;
    bool linked = false;
};

class WebSocketClient {
  public:
    explicit WebSocketClient(WebSocketClientOptions options = {})
        : options_(std::move(options)), tick_timer_(context_) {}
    WebSocketClient(const WebSocketClient&) = delete;
    WebSocketClient& operator=(const WebSocketClient&) = delete;
    ~WebSocketClient() {
        if (ws_) terminate();
    }

    /// Opens a connection (TCP and WebSocket upgrade to `target`, e.g. "/" or "/krmx?version=1"). Throws
    /// std::runtime_error when that fails or takes longer than connect_timeout. Closes an open one first.
    void connect(const std::string& host, std::uint16_t port, const std::string& target = "/") {
        if (ws_) disconnect();
        namespace beast = boost::beast;
        auto ws = std::make_unique<Ws>(context_);
        boost::asio::ip::tcp::resolver resolver{context_};
        beast::error_code ec;
        const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
        if (ec)
            throw std::runtime_error("krmx::net::WebSocketClient: cannot resolve " + host + ": " +
                                     ec.message());
        auto& tcp = beast::get_lowest_layer(*ws);
        tcp.expires_after(options_.connect_timeout);
        bool done = false;
        tcp.async_connect(endpoints, [&](beast::error_code e, const auto&) {
            ec = e;
            done = true;
        });
        run_until_flag(done);
        if (!ec) {
            tcp.expires_never();
            beast::websocket::stream_base::timeout timeout =
                beast::websocket::stream_base::timeout::suggested(beast::role_type::client);
            timeout.handshake_timeout = options_.connect_timeout;
            ws->set_option(timeout);
            ws->read_message_max(options_.max_message_bytes);
            done = false;
            ws->async_handshake(host + ":" + std::to_string(port), target, [&](beast::error_code e) {
                ec = e;
                done = true;
            });
            run_until_flag(done);
        }
        if (ec) {
            throw std::runtime_error("krmx::net::WebSocketClient: cannot connect to " + host + ":" +
                                     std::to_string(port) + target + ": " + ec.message());
        }
        ws_ = std::move(ws);
        ++generation_;
        ++statistics_.connects;
        users_.clear();
        read();
        schedule_tick();
    }

    /// Asks to link as `username`, with an optional auth token. The answer comes while the client runs.
    void link(std::string username, std::optional<std::string> auth = std::nullopt) {
        nlohmann::json payload{{"username", username}, {"version", options_.version}};
        if (auth) payload["auth"] = *auth;
        linking_ = std::move(username);
        last_rejection_.reset();
        write(nlohmann::json{{"type", "krmx/link"}, {"payload", payload}}.dump());
    }
    void unlink() { write(R"({"type":"krmx/unlink"})"); }
    void leave() { write(R"({"type":"krmx/leave"})"); }
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
        auto& socket = boost::beast::get_lowest_layer(*ws_).socket();
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
    [[nodiscard]] bool linked() const noexcept { return username_.has_value(); }
    /// The username this client is linked as.
    [[nodiscard]] const std::optional<std::string>& username() const noexcept { return username_; }
    /// The reason of the last `krmx/rejected`, until the next link().
    [[nodiscard]] const std::optional<std::string>& last_rejection() const noexcept {
        return last_rejection_;
    }
    /// Users as the session frames told this client, in the order it learned of them.
    [[nodiscard]] const std::vector<ClientUser>& users() const noexcept { return users_; }
    /// Every `krmx/*` frame received, in order (for tests and tools); clear it when you like.
    [[nodiscard]] std::vector<std::string>& session_frames() noexcept { return session_frames_; }
    [[nodiscard]] const WebSocketClientStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] boost::asio::io_context& context() noexcept { return context_; }

    /// `f(std::string_view reason)`: a link attempt was rejected.
    Subscription on_rejected(std::function<void(std::string_view)> f) {
        return on_rejected_.connect(std::move(f));
    }
    /// `f()`: the connection is gone (after on_unlink when it was linked).
    Subscription on_close(NoticeCallback f) { return on_close_.connect(std::move(f)); }

    // krmx::ClientTransport and krmx::TickingTransport
    Subscription on_link(UserCallback f) { return on_link_.connect(std::move(f)); }
    Subscription on_unlink(NoticeCallback f) { return on_unlink_.connect(std::move(f)); }
    Subscription on_message(MessageCallback f) { return on_message_.connect(std::move(f)); }
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
    using Ws = boost::beast::websocket::stream<boost::beast::tcp_stream>;

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
        ws_->text(true);
        ws_->async_write(boost::asio::buffer(*queue_.front()), [this, g = generation_, keep = queue_.front()](
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
            handle(text);
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

    void handle(const std::string& text) {
        std::vector<krmx::detail::JsonMember> members;
        std::vector<krmx::detail::JsonMember> payload;
        std::optional<std::string> type;
        if (krmx::detail::scan_object(text, members, "payload", payload).empty()) {
            type = detail::session_message_type(members);
        }
        if (!type) {
            ++statistics_.ignored_messages;
            return;
        }
        if (!type->starts_with("krmx/")) {
            if (!linked()) {
                ++statistics_.ignored_messages;
                return;
            }
            on_message_.emit(text);
            return;
        }
        session_frames_.push_back(text);
        const auto field = [&payload](std::string_view key) -> std::string {
            const auto* m = krmx::detail::find_member(payload, key);
            if (!m) return {};
            try {
                return krmx::detail::json_string_value(m->value).value_or(std::string{});
            } catch (...) {
                return {};
            }
        };
        if (*type == "krmx/accepted") {
            username_ = linking_;
            on_link_.emit(*username_);
        } else if (*type == "krmx/rejected") {
            ++statistics_.rejections;
            last_rejection_ = field("reason");
            on_rejected_.emit(*last_rejection_);
        } else if (*type == "krmx/joined") {
            const auto name = field("username");
            if (!find(name)) users_.push_back(ClientUser{name, false});
        } else if (*type == "krmx/linked") {
            if (auto* u = find(field("username"))) u->linked = true;
        } else if (*type == "krmx/unlinked") {
            const auto name = field("username");
            if (auto* u = find(name)) u->linked = false;
            if (username_ && name == *username_) {
                username_.reset();
                users_.clear();
                on_unlink_.emit();
            }
        } else if (*type == "krmx/left") {
            const auto name = field("username");
            std::erase_if(users_, [&name](const ClientUser& u) { return u.username == name; });
        }
    }

    ClientUser* find(std::string_view name) {
        for (auto& u : users_) {
            if (u.username == name) return &u;
        }
        return nullptr;
    }

    void lost() {
        if (!ws_) return;
        ++generation_;
        ++statistics_.disconnects;
        boost::beast::error_code ignored;
        boost::beast::get_lowest_layer(*ws_).socket().close(ignored);
        tick_timer_.cancel();
        // The stream may still be referenced by a handler being unwound: keep it until the next connect.
        retired_.push_back(std::move(ws_));
        if (retired_.size() > 4) retired_.erase(retired_.begin());
        queue_.clear();
        writing_ = false;
        buffer_.consume(buffer_.size());
        users_.clear();
        const bool was_linked = username_.has_value();
        username_.reset();
        if (was_linked) on_unlink_.emit();
        on_close_.emit();
    }

    WebSocketClientOptions options_;
    boost::asio::io_context context_{1};
    boost::asio::steady_timer tick_timer_;
    std::unique_ptr<Ws> ws_;
    std::vector<std::unique_ptr<Ws>> retired_;
    boost::beast::flat_buffer buffer_;
    std::deque<SharedText> queue_;
    bool writing_ = false;
    std::uint64_t generation_ = 0;
    std::string linking_;
    std::optional<std::string> username_;
    std::optional<std::string> last_rejection_;
    std::vector<ClientUser> users_;
    std::vector<std::string> session_frames_;
    WebSocketClientStatistics statistics_;
    krmx::detail::Signal<std::string_view> on_link_;
    krmx::detail::Signal<> on_unlink_;
    krmx::detail::Signal<std::string_view> on_message_;
    krmx::detail::Signal<> on_tick_;
    krmx::detail::Signal<std::string_view> on_rejected_;
    krmx::detail::Signal<> on_close_;
};

static_assert(ClientTransport<WebSocketClient> && TickingTransport<WebSocketClient>);

}  // namespace krmx::net

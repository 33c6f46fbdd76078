#pragma once
// krmx::testing::Hub: an in-process Krmx server and any number of clients, wired through message queues
// with a latency per connection and a manual clock. Nothing happens until the test says so: `step()`
// delivers the next message (moving the clock to its arrival), `advance(d)` lets `d` pass, `run_until_idle()`
// delivers until the queues are empty. Every multiplayer scenario replays identically.
//
//   krmx::testing::Hub hub;
//   krmx::StreamHost host{hub.server()};
//   krmx::StreamServer server{host, "counter", counter::model()};
//   auto& alice = hub.connect("alice", 20ms);          // a connection, not linked yet
//   krmx::StreamClient a{alice, "counter", counter::model()};
//   alice.link();                                       // krmx/link travels to the server (20 ms)...
//   hub.run_until_idle();                               // ...accepted, history back (20 ms)
//   (void)a.dispatch(counter::increment(3));
//   hub.run_until_idle();
//
// The Krmx session semantics (PROTOCOL.md, section 1), as far as streams can tell: link (the server's link
// callbacks run when the request arrives; what they send follows the acceptance), unlink, leave (unlink and
// forget the user), a link or unlink request while linked unlinks, a dropped connection unlinks both sides
// at once and loses what was in flight; the same user may link again and gets the history again.
// Simplifications: one connection per username, every link is accepted, no krmx/joined etc. messages.
// One-way latency per connection, the same both ways; each direction is FIFO, like a TCP stream.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/clock.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::testing {

class Hub;

/// One message on its way, as reported by Hub::on_delivery after it was handled.
struct Delivery {
    enum class Kind : std::uint8_t {
        link,      ///< client -> server: krmx/link
        unlink,    ///< client -> server: krmx/unlink
        leave,     ///< client -> server: krmx/leave
        accepted,  ///< server -> client: the link was accepted
        unlinked,  ///< server -> client: the user is unlinked (after unlink or leave)
        message,   ///< an application message, either way
    };
    TimePoint at;
    std::string_view user;  ///< the client end of the connection
    bool to_server;
    Kind kind;
    std::string_view text;  ///< the message, for Kind::message
};

struct HubStatistics {
    std::uint64_t delivered = 0;      ///< queue items delivered
    std::uint64_t lost = 0;           ///< in flight when a connection dropped
    std::uint64_t undeliverable = 0;  ///< sent to or from a user that was not linked: dropped
};

namespace detail {

struct HubItem {
    TimePoint at;
    std::uint64_t seq;
    Delivery::Kind kind;
    std::string text;
};

}  // namespace detail

/// A client's end of its connection; a krmx::ClientTransport (with ticks and the hub's clock).
class ClientEndpoint {
  public:
    ClientEndpoint(const ClientEndpoint&) = delete;
    ClientEndpoint& operator=(const ClientEndpoint&) = delete;

    [[nodiscard]] const std::string& username() const noexcept { return username_; }
    /// Linked as this client knows it: from the arrival of the acceptance to the arrival of the unlink.
    [[nodiscard]] bool linked() const noexcept { return linked_; }
    [[nodiscard]] Duration latency() const noexcept { return latency_; }
    void set_latency(Duration latency) noexcept { latency_ = latency; }
    [[nodiscard]] const ManualClock& clock() const noexcept;

    /// Session requests; they travel to the server with this connection's latency.
    void link();
    void unlink();
    void leave();
    /// The connection breaks: both sides learn at once, what was in flight is lost. link() reconnects.
    void drop();

    // krmx::ClientTransport
    Subscription on_link(UserCallback f) { return on_link_.connect(std::move(f)); }
    Subscription on_unlink(NoticeCallback f) { return on_unlink_.connect(std::move(f)); }
    Subscription on_message(MessageCallback f) { return on_message_.connect(std::move(f)); }
    Subscription on_tick(NoticeCallback f) { return on_tick_.connect(std::move(f)); }
    /// An application message to the server; dropped (and counted) while not linked.
    void send(std::string text);

    /// Every message this client received, in order (for assertions); clear_received() empties it.
    [[nodiscard]] const std::vector<std::string>& received() const noexcept { return received_; }
    void clear_received() noexcept { received_.clear(); }
    /// Keep received() (default) or not (long randomized runs).
    void keep_received(bool keep) noexcept { keep_received_ = keep; }

  private:
    friend class Hub;
    friend class ServerEndpoint;
    ClientEndpoint(Hub& hub, std::string username, Duration latency)
        : hub_(&hub), username_(std::move(username)), latency_(latency) {}

    Hub* hub_;
    std::string username_;
    Duration latency_;
    bool linked_ = false;         // client view
    bool server_linked_ = false;  // server view
    bool keep_received_ = true;
    std::deque<detail::HubItem> up_;    // to the server
    std::deque<detail::HubItem> down_;  // to the client
    std::vector<std::string> received_;
    krmx::detail::Signal<std::string_view> on_link_;
    krmx::detail::Signal<> on_unlink_;
    krmx::detail::Signal<std::string_view> on_message_;
    krmx::detail::Signal<> on_tick_;
};

/// The server's end of every connection; a krmx::ServerTransport.
class ServerEndpoint {
  public:
    ServerEndpoint(const ServerEndpoint&) = delete;
    ServerEndpoint& operator=(const ServerEndpoint&) = delete;

    Subscription on_link(UserCallback f) { return on_link_.connect(std::move(f)); }
    Subscription on_unlink(UserCallback f) { return on_unlink_.connect(std::move(f)); }
    Subscription on_message(UserMessageCallback f) { return on_message_.connect(std::move(f)); }
    /// To one linked user; dropped (and counted) when the user is not linked.
    void send(std::string_view username, std::string text);
    /// To every linked user.
    void broadcast(std::string text);

    /// Linked users as the server knows them, in connection order.
    [[nodiscard]] std::vector<std::string> linked_users() const;
    [[nodiscard]] bool linked(std::string_view username) const;
    /// Users that joined and have not left, in join order (linked or not).
    [[nodiscard]] const std::vector<std::string>& known_users() const noexcept { return known_; }

  private:
    friend class Hub;
    explicit ServerEndpoint(Hub& hub) : hub_(&hub) {}

    Hub* hub_;
    std::vector<std::string> known_;
    krmx::detail::Signal<std::string_view> on_link_;
    krmx::detail::Signal<std::string_view> on_unlink_;
    krmx::detail::Signal<std::string_view, std::string_view> on_message_;
};

struct HubOptions {
    /// The one-way latency of connections made without one.
    Duration latency = Duration::zero();
    /// run_until_idle() gives up (throws) after this many deliveries: two parties answering each other
    /// forever.
    std::size_t max_steps = 10'000'000;
};

class Hub {
  public:
    explicit Hub(HubOptions options = {}) : options_(options), start_(clock_.now()), server_(*this) {}
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    [[nodiscard]] ManualClock& clock() noexcept { return clock_; }
    [[nodiscard]] const ManualClock& clock() const noexcept { return clock_; }
    [[nodiscard]] TimePoint now() const noexcept { return clock_.now(); }
    /// Time since the hub was made: handy for printing timelines.
    [[nodiscard]] Duration elapsed() const noexcept { return clock_.now() - start_; }

    [[nodiscard]] ServerEndpoint& server() noexcept { return server_; }

    /// A new client connection for `username` (not linked yet: call link()). Throws when it exists.
    ClientEndpoint& connect(std::string username, std::optional<Duration> latency = std::nullopt) {
        if (find(username))
            throw std::invalid_argument("krmx::testing::Hub: '" + username + "' is connected already");
        clients_.push_back(std::unique_ptr<ClientEndpoint>(
            new ClientEndpoint(*this, std::move(username), latency.value_or(options_.latency))));
        return *clients_.back();
    }
    /// The connection of `username`; throws when there is none.
    [[nodiscard]] ClientEndpoint& client(std::string_view username) {
        if (auto* c = find(username)) return *c;
        throw std::invalid_argument("krmx::testing::Hub: no client '" + std::string{username} + "'");
    }
    [[nodiscard]] std::vector<ClientEndpoint*> clients() const {
        std::vector<ClientEndpoint*> out;
        for (const auto& c : clients_) out.push_back(c.get());
        return out;
    }

    /// Delivers the next message, moving the clock to its arrival. False when nothing is in flight.
    bool step() {
        ClientEndpoint* owner = nullptr;
        bool to_server = false;
        const detail::HubItem* next = nullptr;
        for (const auto& c : clients_) {
            for (const bool up : {true, false}) {
                const auto& queue = up ? c->up_ : c->down_;
                if (queue.empty()) continue;
                const auto& item = queue.front();
                if (!next || item.at < next->at || (item.at == next->at && item.seq < next->seq)) {
                    next = &item;
                    owner = c.get();
                    to_server = up;
                }
            }
        }
        if (!next) return false;
        if (next->at > clock_.now()) move_clock(next->at);
        auto& queue = to_server ? owner->up_ : owner->down_;
        detail::HubItem item = std::move(queue.front());
        queue.pop_front();
        ++statistics_.delivered;
        if (to_server) {
            at_server(*owner, item);
        } else {
            at_client(*owner, item);
        }
        if (!on_delivery_.empty())
            on_delivery_.emit(Delivery{clock_.now(), owner->username_, to_server, item.kind, item.text});
        return true;
    }

    /// Delivers until nothing is in flight; returns how many deliveries that took.
    std::size_t run_until_idle() {
        std::size_t steps = 0;
        while (step()) {
            if (++steps >= options_.max_steps) {
                throw std::runtime_error("krmx::testing::Hub::run_until_idle: still busy after " +
                                         std::to_string(steps) + " deliveries");
            }
        }
        return steps;
    }

    /// Lets `by` pass: delivers everything that arrives until then, in order, then moves the clock.
    void advance(Duration by) {
        const TimePoint until = clock_.now() + by;
        while (const auto at = next_arrival()) {
            if (*at > until) break;
            step();
        }
        if (until > clock_.now()) move_clock(until);
    }

    [[nodiscard]] bool idle() const noexcept { return !next_arrival(); }
    /// When the next message arrives, if any is in flight.
    [[nodiscard]] std::optional<TimePoint> next_arrival() const noexcept {
        std::optional<TimePoint> best;
        for (const auto& c : clients_) {
            for (const auto* queue : {&c->up_, &c->down_}) {
                if (!queue->empty() && (!best || queue->front().at < *best)) best = queue->front().at;
            }
        }
        return best;
    }

    /// `f(const krmx::testing::Delivery&)` after each delivery was handled: for traces and timelines.
    template <class F>
    Subscription on_delivery(F&& f) {
        return on_delivery_.connect(std::forward<F>(f));
    }

    [[nodiscard]] const HubStatistics& statistics() const noexcept { return statistics_; }

  private:
    friend class ClientEndpoint;
    friend class ServerEndpoint;

    ClientEndpoint* find(std::string_view username) const {
        for (const auto& c : clients_) {
            if (c->username_ == username) return c.get();
        }
        return nullptr;
    }

    // Each direction is FIFO: a message never overtakes one sent before it, even after a latency change.
    void enqueue(std::deque<detail::HubItem>& queue, Duration latency, Delivery::Kind kind,
                 std::string text) {
        TimePoint at = clock_.now() + latency;
        if (!queue.empty()) at = std::max(at, queue.back().at);
        queue.push_back(detail::HubItem{at, next_seq_++, kind, std::move(text)});
    }
    void to_server(ClientEndpoint& c, Delivery::Kind kind, std::string text = {}) {
        enqueue(c.up_, c.latency_, kind, std::move(text));
    }
    void to_client(ClientEndpoint& c, Delivery::Kind kind, std::string text = {}) {
        enqueue(c.down_, c.latency_, kind, std::move(text));
    }

    void move_clock(TimePoint to) {
        clock_.set(to);
        for (std::size_t i = 0; i < clients_.size(); ++i) clients_[i]->on_tick_.emit();
    }

    void server_unlink(ClientEndpoint& c, bool forget) {
        c.server_linked_ = false;
        to_client(c, Delivery::Kind::unlinked);
        server_.on_unlink_.emit(c.username_);
        if (forget) std::erase(server_.known_, c.username_);
    }

    void at_server(ClientEndpoint& c, detail::HubItem& item) {
        using Kind = Delivery::Kind;
        switch (item.kind) {
            case Kind::link:
                if (c.server_linked_) {  // a link request while linked unlinks (Krmx)
                    server_unlink(c, false);
                    return;
                }
                c.server_linked_ = true;
                if (std::find(server_.known_.begin(), server_.known_.end(), c.username_) ==
                    server_.known_.end()) {
                    server_.known_.push_back(c.username_);
                }
                to_client(c, Kind::accepted);        // first the acceptance,
                server_.on_link_.emit(c.username_);  // then whatever the link hooks send (histories)
                return;
            case Kind::unlink:
                if (c.server_linked_) server_unlink(c, false);
                return;
            case Kind::leave:
                if (c.server_linked_) server_unlink(c, true);
                return;
            case Kind::message:
                if (!c.server_linked_) {  // Krmx refuses messages on an unlinked connection
                    ++statistics_.undeliverable;
                    return;
                }
                server_.on_message_.emit(c.username_, item.text);
                return;
            default:
                return;
        }
    }

    void at_client(ClientEndpoint& c, detail::HubItem& item) {
        using Kind = Delivery::Kind;
        switch (item.kind) {
            case Kind::accepted:
                c.linked_ = true;
                c.on_link_.emit(c.username_);
                return;
            case Kind::unlinked:
                c.linked_ = false;
                c.on_unlink_.emit();
                return;
            case Kind::message:
                if (c.keep_received_) c.received_.push_back(item.text);
                c.on_message_.emit(item.text);
                return;
            default:
                return;
        }
    }

    void drop(ClientEndpoint& c) {
        statistics_.lost += c.up_.size() + c.down_.size();
        c.up_.clear();
        c.down_.clear();
        const bool server_side = c.server_linked_;
        const bool client_side = c.linked_;
        c.server_linked_ = false;
        c.linked_ = false;
        if (server_side) server_.on_unlink_.emit(c.username_);
        if (client_side) c.on_unlink_.emit();
    }

    HubOptions options_;
    ManualClock clock_;
    TimePoint start_;
    ServerEndpoint server_;
    std::vector<std::unique_ptr<ClientEndpoint>> clients_;
    std::uint64_t next_seq_ = 0;
    HubStatistics statistics_;
    krmx::detail::Signal<const Delivery&> on_delivery_;
};

inline const ManualClock& ClientEndpoint::clock() const noexcept {
    return hub_->clock();
}
inline void ClientEndpoint::link() {
    hub_->to_server(*this, Delivery::Kind::link);
}
inline void ClientEndpoint::unlink() {
    hub_->to_server(*this, Delivery::Kind::unlink);
}
inline void ClientEndpoint::leave() {
    hub_->to_server(*this, Delivery::Kind::leave);
}
inline void ClientEndpoint::drop() {
    hub_->drop(*this);
}
inline void ClientEndpoint::send(std::string text) {
    if (!linked_) {
        ++hub_->statistics_.undeliverable;
        return;
    }
    hub_->to_server(*this, Delivery::Kind::message, std::move(text));
}

inline void ServerEndpoint::send(std::string_view username, std::string text) {
    auto* c = hub_->find(username);
    if (!c || !c->server_linked_) {
        ++hub_->statistics_.undeliverable;
        return;
    }
    hub_->to_client(*c, Delivery::Kind::message, std::move(text));
}
inline void ServerEndpoint::broadcast(std::string text) {
    for (const auto& c : hub_->clients_) {
        if (c->server_linked_) hub_->to_client(*c, Delivery::Kind::message, text);
    }
}
inline std::vector<std::string> ServerEndpoint::linked_users() const {
    std::vector<std::string> out;
    for (const auto& c : hub_->clients_) {
        if (c->server_linked_) out.push_back(c->username_);
    }
    return out;
}
inline bool ServerEndpoint::linked(std::string_view username) const {
    const auto* c = hub_->find(username);
    return c && c->server_linked_;
}

static_assert(ServerTransport<ServerEndpoint>);
static_assert(ClientTransport<ClientEndpoint> && TickingTransport<ClientEndpoint>);

}  // namespace krmx::testing

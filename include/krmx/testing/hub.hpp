#pragma once
// krmx::testing::Hub: an in-process Krmx server and any number of clients, wired through message queues
// with a latency per connection and a manual clock. The server is the production session
// (krmx::net::Session, the very code a krmx::net::WebSocketServer runs) and every client runs the
// production client session (krmx::net::ClientSession, as krmx::net::WebSocketClient does): only the
// sockets are simulated. Nothing happens until the test says so: `step()` delivers the next message (moving
// the clock to its arrival), `advance(d)` lets `d` pass, `run_until_idle()` delivers until the queues are
// empty and no posted work is outstanding. Timers (`after`) fire when the clock passes them: in advance(), or
// before a delivery that moves the clock beyond them. Every multiplayer scenario replays identically.
//
//   krmx::testing::Hub hub;
//   krmx::StreamDomain server{hub, "counter", counter::model()};      // on hub.host()
//   auto& alice = hub.connect("alice", 20ms);          // a connection, not linked yet
//   krmx::StreamClient a{alice, "counter", counter::model()};
//   alice.link();                                       // krmx/link travels to the session (20 ms)...
//   hub.run_until_idle();                               // ...accepted, history back (20 ms)
//   (void)a.dispatch(counter::increment(3));
//   hub.run_until_idle();
//
// A connection opens at the server when its first link request arrives there, and again after it was
// dropped or closed. One-way latency per connection, the same both ways; each direction is FIFO, like a TCP
// stream. The hub is also an event loop: `post(f)` (from any thread) runs `f` on the test's thread in the
// next step, and work that will post (a durable domain's commit on its writer thread) holds the hub busy,
// so run_until_idle waits for it.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/clock.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/net/client_session.hpp"
#include "krmx/net/session.hpp"
#include "krmx/sync/domain_host.hpp"
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
        rejected,  ///< server -> client: a link request (or a message on an unlinked connection) was refused
        unlinked,  ///< server -> client: this client is unlinked (after unlink or leave)
        session,   ///< server -> client: another krmx/* frame (who joined, linked, unlinked, left)
        message,   ///< an application message, either way
        closed,    ///< server -> client: the server closed the connection (link deadline, stop)
    };
    TimePoint at;
    std::string_view user;  ///< the client end of the connection
    bool to_server;
    Kind kind;
    std::string_view text;  ///< the frame
};

struct HubStatistics {
    std::uint64_t delivered = 0;      ///< queue items delivered
    std::uint64_t lost = 0;           ///< in flight when a connection dropped
    std::uint64_t undeliverable = 0;  ///< sent by a client that was not linked, or with no connection open
    std::uint64_t posted = 0;         ///< functions run through post()
    std::uint64_t timers = 0;         ///< functions run through after()
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
    [[nodiscard]] bool linked() const noexcept { return session_.linked(); }
    [[nodiscard]] Duration latency() const noexcept { return latency_; }
    void set_latency(Duration latency) noexcept { latency_ = latency; }
    [[nodiscard]] const ManualClock& clock() const noexcept;
    /// The client session: users as this client knows them, rejections, `krmx/*` frames received.
    [[nodiscard]] net::ClientSession& session() noexcept { return session_; }

    /// Session requests; they travel to the server with this connection's latency.
    void link(std::optional<std::string> auth = std::nullopt);
    void unlink();
    void leave();
    /// The connection breaks: both sides learn at once, what was in flight is lost. link() reconnects.
    void drop();

    // krmx::ClientTransport
    Subscription on_link(UserCallback f) { return session_.on_link(std::move(f)); }
    Subscription on_unlink(NoticeCallback f) { return session_.on_unlink(std::move(f)); }
    Subscription on_message(MessageCallback f) { return session_.on_message(std::move(f)); }
    Subscription on_tick(NoticeCallback f) { return on_tick_.connect(std::move(f)); }
    /// An application message to the server; dropped (and counted) while not linked, as @krmx/client does.
    void send(std::string text);

    /// Every application message this client received, in order (for assertions); clear_received()
    /// empties it. The session's own frames: session().session_frames().
    [[nodiscard]] const std::vector<std::string>& received() const noexcept { return received_; }
    void clear_received() noexcept { received_.clear(); }
    /// Keep received() (default) or not (long randomized runs).
    void keep_received(bool keep) noexcept { keep_received_ = keep; }

  private:
    friend class Hub;
    ClientEndpoint(Hub& hub, std::string username, Duration latency, net::ClientSessionOptions options)
        : hub_(&hub), username_(std::move(username)), latency_(latency), session_(std::move(options)) {
        // First of the message callbacks: received() holds a message before anyone reacts to it.
        record_ = session_.on_message([this](std::string_view text) {
            if (keep_received_) received_.emplace_back(text);
        });
    }

    Hub* hub_;
    std::string username_;
    Duration latency_;
    net::ClientSession session_;
    std::optional<net::ConnectionId> connection_;  // open at the server
    bool keep_received_ = true;
    std::deque<detail::HubItem> up_;    // to the server
    std::deque<detail::HubItem> down_;  // to the client
    std::vector<std::string> received_;
    krmx::detail::Signal<> on_tick_;
    Subscription record_;
};

struct HubOptions {
    /// The one-way latency of connections made without one.
    Duration latency = Duration::zero();
    /// run_until_idle() gives up (throws) after this many deliveries: two parties answering each other
    /// forever.
    std::size_t max_steps = 10'000'000;
    /// run_until_idle() gives up (throws) when work that holds the hub posts nothing for this long.
    std::chrono::milliseconds work_timeout{30'000};
    /// The server's session (its clock is the hub's).
    net::SessionOptions session = {};
    /// The clients' sessions (version, features).
    net::ClientSessionOptions client = {};
    DomainHostOptions host = {};
};

class Hub final : private net::SessionSink {
  public:
    explicit Hub(HubOptions options = {})
        : options_(std::move(options)),
          start_(clock_.now()),
          session_(*this, options_.session, ClockRef{clock_}),
          host_(std::make_unique<DomainHost>(*this, options_.host)) {}
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;
    ~Hub() override {
        // Posted functions may hold work tokens, whose release reaches back here: let them go first.
        std::deque<std::function<void()>> posted;
        {
            std::lock_guard lock{work_mutex_};
            posted.swap(posted_);
        }
        posted.clear();
    }

    [[nodiscard]] ManualClock& clock() noexcept { return clock_; }
    [[nodiscard]] const ManualClock& clock() const noexcept { return clock_; }
    [[nodiscard]] TimePoint now() const noexcept { return clock_.now(); }
    /// Time since the hub was made: handy for printing timelines.
    [[nodiscard]] Duration elapsed() const noexcept { return clock_.now() - start_; }

    /// The server: the production Krmx session (users, hooks, kick, statistics).
    [[nodiscard]] net::Session& server() noexcept { return session_; }
    [[nodiscard]] const net::Session& server() const noexcept { return session_; }
    /// The host of the server's domains: `krmx::StreamDomain counter{hub, "counter", model}` attaches to it.
    [[nodiscard]] DomainHost& host() noexcept { return *host_; }

    /// A new client connection for `username` (not linked yet: call link()). Throws when it exists.
    ClientEndpoint& connect(std::string username, std::optional<Duration> latency = std::nullopt) {
        if (find(username))
            throw std::invalid_argument("krmx::testing::Hub: '" + username + "' is connected already");
        clients_.push_back(std::unique_ptr<ClientEndpoint>(
            new ClientEndpoint(*this, std::move(username), latency.value_or(options_.latency), options_.client)));
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

    /// Runs what was posted, or else delivers the next message (moving the clock to its arrival), or else
    /// waits for work that holds the hub to post. False when there is nothing of the three.
    bool step() {
        for (;;) {
            if (run_posted()) return true;
            if (deliver()) return true;
            if (!wait_for_work()) return false;
        }
    }

    /// Steps until nothing is in flight, nothing is posted and no work holds the hub; returns how many
    /// steps that took.
    std::size_t run_until_idle() {
        std::size_t steps = 0;
        while (step()) {
            if (++steps >= options_.max_steps) {
                throw std::runtime_error("krmx::testing::Hub::run_until_idle: still busy after " +
                                         std::to_string(steps) + " steps");
            }
        }
        return steps;
    }

    /// Lets `by` pass: delivers everything that arrives until then and fires the timers due until then, in
    /// order (and runs what is posted meanwhile), then moves the clock.
    void advance(Duration by) {
        const TimePoint until = clock_.now() + by;
        for (;;) {
            if (run_posted()) continue;
            const auto at = next_arrival();
            if (at && *at <= until) {
                (void)deliver();  // or a timer due before it
                continue;
            }
            if (!fire_timer(until)) break;
        }
        if (until > clock_.now()) move_clock(until);
    }

    /// On the test's thread: runs `f` once the hub's clock has moved `delay` on (see advance()). Timers do
    /// not keep the hub busy: run_until_idle() lets no time pass for them.
    void after(Duration delay, std::function<void()> f) { timers_.emplace(clock_.now() + delay, std::move(f)); }

    /// Nothing in flight, nothing posted, no work holding the hub.
    [[nodiscard]] bool idle() const {
        std::lock_guard lock{work_mutex_};
        return !next_arrival() && posted_.empty() && held_ == 0;
    }
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

    // --- the event loop ------------------------------------------------------------------------------

    /// From any thread: runs `f` on the test's thread, in the next step.
    void post(std::function<void()> f) {
        {
            std::lock_guard lock{work_mutex_};
            posted_.push_back(std::move(f));
        }
        work_changed_.notify_all();
    }
    /// Work that will post: run_until_idle waits for it while the token lives.
    [[nodiscard]] std::shared_ptr<void> hold() {
        {
            std::lock_guard lock{work_mutex_};
            ++held_;
        }
        return std::shared_ptr<void>{static_cast<void*>(this), [](void* self) {
                                         auto* hub = static_cast<Hub*>(self);
                                         {
                                             std::lock_guard lock{hub->work_mutex_};
                                             --hub->held_;
                                         }
                                         hub->work_changed_.notify_all();
                                     }};
    }

    // --- krmx::ServerTransport, through the session (what the host runs on) ---------------------------

    Subscription on_link(UserCallback f) { return session_.on_link(std::move(f)); }
    Subscription on_unlink(UserCallback f) { return session_.on_unlink(std::move(f)); }
    Subscription on_message(UserMessageCallback f) { return session_.on_message(std::move(f)); }
    void send(std::string_view username, std::string text) { session_.send(username, std::move(text)); }
    void send(std::string_view username, const SharedText& text) { session_.send(username, text); }
    void broadcast(std::string text) { session_.broadcast(std::move(text)); }
    [[nodiscard]] bool has_feature(std::string_view username, std::string_view feature) const {
        return session_.has_feature(username, feature);
    }

  private:
    friend class ClientEndpoint;

    ClientEndpoint* find(std::string_view username) const {
        for (const auto& c : clients_) {
            if (c->username_ == username) return c.get();
        }
        return nullptr;
    }
    ClientEndpoint* at_connection(net::ConnectionId connection) const {
        for (const auto& c : clients_) {
            if (c->connection_ == connection) return c.get();
        }
        return nullptr;
    }

    // net::SessionSink: the session's frames travel to their client.
    void send(net::ConnectionId connection, net::SharedText text) override {
        if (auto* c = at_connection(connection)) to_client(*c, Delivery::Kind::message, *text);
    }
    void close(net::ConnectionId connection, net::CloseReason) override {
        if (auto* c = at_connection(connection)) {
            c->connection_.reset();  // the session forgot it already
            to_client(*c, Delivery::Kind::closed);
        }
    }

    // The next message in flight, moving the clock to its arrival; false when there is none.
    bool deliver() {
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
        if (fire_timer(next->at)) return true;  // due before this arrives
        if (next->at > clock_.now()) move_clock(next->at);
        auto& queue = to_server ? owner->up_ : owner->down_;
        detail::HubItem item = std::move(queue.front());
        queue.pop_front();
        ++statistics_.delivered;
        const auto kind = to_server ? at_server(*owner, item) : at_client(*owner, item);
        if (!on_delivery_.empty())
            on_delivery_.emit(Delivery{clock_.now(), owner->username_, to_server, kind, item.text});
        return true;
    }

    // The first timer due at `until` or before, run at its time; false when there is none.
    bool fire_timer(TimePoint until) {
        if (timers_.empty() || timers_.begin()->first > until) return false;
        auto node = timers_.extract(timers_.begin());
        if (node.key() > clock_.now()) move_clock(node.key());
        ++statistics_.timers;
        node.mapped()();
        return true;
    }

    bool run_posted() {
        std::deque<std::function<void()>> ready;
        {
            std::lock_guard lock{work_mutex_};
            ready.swap(posted_);
        }
        for (auto& f : ready) {
            ++statistics_.posted;
            f();
        }
        return !ready.empty();
    }

    // Nothing to step: waits while work holds the hub (false when none does).
    bool wait_for_work() {
        std::unique_lock lock{work_mutex_};
        if (held_ == 0 && posted_.empty()) return false;
        if (!work_changed_.wait_for(lock, options_.work_timeout, [this] { return !posted_.empty() || held_ == 0; })) {
            throw std::runtime_error("krmx::testing::Hub::run_until_idle: work held the hub for longer than " +
                                     std::to_string(options_.work_timeout.count()) + " ms without posting");
        }
        return true;
    }

    // Each direction is FIFO: a message never overtakes one sent before it, even after a latency change.
    void enqueue(std::deque<detail::HubItem>& queue, Duration latency, Delivery::Kind kind, std::string text) {
        TimePoint at = clock_.now() + latency;
        if (!queue.empty()) at = std::max(at, queue.back().at);
        queue.push_back(detail::HubItem{at, next_seq_++, kind, std::move(text)});
    }
    void to_server(ClientEndpoint& c, Delivery::Kind kind, std::string text) {
        enqueue(c.up_, c.latency_, kind, std::move(text));
    }
    void to_client(ClientEndpoint& c, Delivery::Kind kind, std::string text = {}) {
        enqueue(c.down_, c.latency_, kind, std::move(text));
    }

    void move_clock(TimePoint to) {
        clock_.set(to);
        session_.tick();  // authentication timeouts, link deadlines
        for (std::size_t i = 0; i < clients_.size(); ++i) clients_[i]->on_tick_.emit();
    }

    Delivery::Kind at_server(ClientEndpoint& c, detail::HubItem& item) {
        if (!c.connection_) {
            if (item.kind != Delivery::Kind::link) {
                ++statistics_.undeliverable;  // nothing open to send it on
                return item.kind;
            }
            c.connection_ = session_.connect();
        }
        session_.receive(*c.connection_, item.text);
        return item.kind;
    }

    Delivery::Kind at_client(ClientEndpoint& c, detail::HubItem& item) {
        if (item.kind == Delivery::Kind::closed) {
            c.session_.lost();
            return item.kind;
        }
        const bool was_linked = c.session_.linked();
        const auto rejections = c.session_.statistics().rejections;
        const auto frames = c.session_.session_frames().size();
        c.session_.receive(item.text);
        if (!was_linked && c.session_.linked()) return Delivery::Kind::accepted;
        if (was_linked && !c.session_.linked()) return Delivery::Kind::unlinked;
        if (c.session_.statistics().rejections != rejections) return Delivery::Kind::rejected;
        if (c.session_.session_frames().size() != frames) return Delivery::Kind::session;
        return Delivery::Kind::message;
    }

    void drop(ClientEndpoint& c) {
        statistics_.lost += c.up_.size() + c.down_.size();
        c.up_.clear();
        c.down_.clear();
        if (const auto connection = std::exchange(c.connection_, std::nullopt)) session_.disconnect(*connection);
        c.session_.lost();
    }

    HubOptions options_;
    ManualClock clock_;
    TimePoint start_;
    net::Session session_;
    std::unique_ptr<DomainHost> host_;
    std::vector<std::unique_ptr<ClientEndpoint>> clients_;
    std::uint64_t next_seq_ = 0;
    HubStatistics statistics_;
    krmx::detail::Signal<const Delivery&> on_delivery_;
    mutable std::mutex work_mutex_;
    std::condition_variable work_changed_;
    std::deque<std::function<void()>> posted_;
    std::size_t held_ = 0;
    std::multimap<TimePoint, std::function<void()>> timers_;  // by when they are due; equal times in order
};

inline const ManualClock& ClientEndpoint::clock() const noexcept {
    return hub_->clock();
}
inline void ClientEndpoint::link(std::optional<std::string> auth) {
    hub_->to_server(*this, Delivery::Kind::link, session_.link_frame(username_, auth));
}
inline void ClientEndpoint::unlink() {
    hub_->to_server(*this, Delivery::Kind::unlink, net::ClientSession::unlink_frame());
}
inline void ClientEndpoint::leave() {
    hub_->to_server(*this, Delivery::Kind::leave, net::ClientSession::leave_frame());
}
inline void ClientEndpoint::drop() {
    hub_->drop(*this);
}
inline void ClientEndpoint::send(std::string text) {
    if (!session_.linked()) {
        ++hub_->statistics_.undeliverable;
        return;
    }
    hub_->to_server(*this, Delivery::Kind::message, std::move(text));
}

static_assert(ServerTransport<Hub>);
static_assert(ClientTransport<ClientEndpoint> && TickingTransport<ClientEndpoint>);

}  // namespace krmx::testing

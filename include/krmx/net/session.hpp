#pragma once
// krmx::net::Session: the Krmx session layer (docs/protocol.md, section 1) as a state machine without I/O.
// The I/O layer (WebSocketServer, or a test) tells it about connections and their text frames; the session
// answers through a SessionSink: frames to send to a connection, and connections to close. Everything runs
// on the caller's thread, time comes from an injectable clock, and deadlines fire in `tick()`.
//
//   RecordingSink sink;                       // any krmx::net::SessionSink
//   krmx::net::Session session{sink};
//   krmx::DomainHost host{session};           // a krmx::ServerTransport: streams run on it unchanged
//   auto c = session.connect();
//   session.receive(c, R"({"type":"krmx/link","payload":{"username":"alice","version":"0.5.4"}})");
//
// Behaviour follows @krmx/server@0.5.5 (users in join order, `join` before `link`, unlink and leave
// broadcasts). Additions: an authentication hook may answer later (with a timeout), a connection that does
// not link in time is closed, sends to users that are not linked are counted instead of thrown, and a link
// may name the features its client reads (`features`, see has_feature).
//
// Every frame is read once, here, under krmx's one grammar (a krmx::Message): the application's message
// callbacks get the scanned message, so nobody downstream reads the text again. A frame outside the
// grammar is not a message: from a linked user it unlinks the user, as an unparsable frame does in Krmx.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/detail/token_bucket.hpp"
#include "krmx/core/log.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/shared_text.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/net/username.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx::net {

/// Names one connection for as long as it is open; never reused by a session.
using ConnectionId = std::uint64_t;
/// One serialised frame, shared by every connection it goes to (a broadcast, a room's members).
using SharedText = krmx::SharedText;

/// Why the session asks the I/O layer to close a connection.
enum class CloseReason : std::uint8_t {
    link_deadline,    ///< the connection did not link within SessionOptions::link_deadline
    server_stopping,  ///< close_all(): the server stops
};

/// Where a session's output goes; implemented by the I/O layer. Called on the session's thread.
class SessionSink {
  public:
    virtual ~SessionSink() = default;
    /// Send one text frame on a connection.
    virtual void send(ConnectionId connection, SharedText text) = 0;
    /// Close a connection. The session has already forgotten it (its user is unlinked); a later
    /// `disconnect` for it is a no-op.
    virtual void close(ConnectionId connection, CloseReason reason) = 0;

  protected:
    SessionSink() = default;
    SessionSink(const SessionSink&) = default;
    SessionSink& operator=(const SessionSink&) = default;
};

/// A link request that passed every check but authentication.
struct LinkRequest {
    ConnectionId connection = 0;
    std::string username;
    std::string version;
    std::optional<std::string> auth;  ///< the `auth` member, when the client sent one
    /// The `features` member: what the client reads beyond Krmx 0.5 (e.g. "stream/history"); empty when
    /// it sent none.
    std::vector<std::string> features;
    bool is_new_user = false;
};

class Session;

/// The answer to one authentication: `accept()` or `reject(reason)`, now (inside the hook) or later (on
/// the session's thread). Only the first answer counts; answers after the timeout, after the connection
/// closed or after the session is gone are ignored. Copyable.
class LinkDecision {
  public:
    void accept() const { answer(std::nullopt); }
    void reject(std::string reason) const { answer(std::move(reason)); }

  private:
    friend class Session;
    LinkDecision(Session* session, std::weak_ptr<void> alive, std::uint64_t ticket)
        : session_(session), alive_(std::move(alive)), ticket_(ticket) {}
    void answer(std::optional<std::string> rejection) const;

    Session* session_;
    std::weak_ptr<void> alive_;
    std::uint64_t ticket_;
};

/// `f(const LinkRequest&, LinkDecision)`: decide, now or later, whether the link goes ahead.
using AuthenticateHook = std::function<void(const LinkRequest&, LinkDecision)>;

struct SessionOptions {
    /// Client versions must start with this (`0.5` links @krmx/client@0.5.x).
    std::string version_prefix = "0.5";
    /// Which usernames are valid; empty: krmx::net::is_krmx_username (the Krmx rule).
    std::function<bool(std::string_view)> is_valid_username = {};
    /// Whether users that are not known yet may link (known users may always relink).
    bool accept_new_users = true;
    /// Empty: every request that passes the checks links.
    AuthenticateHook authenticate = {};
    /// An authentication that has not answered after this is rejected with `authentication timeout`.
    Duration authentication_timeout = std::chrono::seconds{10};
    /// A connection that is not linked this long after it opened (or after its last unlink) is closed.
    /// Zero: never.
    Duration link_deadline = std::chrono::seconds{60};

    // Limits for a server exposed to the internet (krmx::net::internet_facing sets them all). The defaults
    // keep Krmx's behaviour, which suits a small game among friends.

    /// A user that has been unlinked this long is forgotten: it leaves, with the `krmx/left` broadcast, as
    /// if it had sent `krmx/leave`. Zero: never (Krmx: a user is known until it leaves or is kicked, so
    /// every user that ever linked is in the roster each later joiner receives).
    Duration forget_unlinked_after = Duration::zero();
    /// At most this many unlinked users are remembered; past it, the one unlinked longest ago is forgotten
    /// at once. Zero: no limit.
    std::size_t max_unlinked_users = 0;
    /// Link requests per connection address per second (a budget that refills at this rate and holds at
    /// most this many); more are rejected with `too many link attempts`. Zero: no limit. Connections
    /// without an address (connect() with none) are not limited.
    std::size_t link_attempts_per_address_per_second = 0;
    /// Links of new users (usernames the session does not know) per address per minute, budgeted the same
    /// way; more are rejected with `too many new users`. Known users may always relink. Zero: no limit.
    std::size_t new_users_per_address_per_minute = 0;

    /// Where notable events go (refused links, kicks, hooks that threw): one line each, never one per
    /// message. Empty: nowhere. The WebSocket server gives its own log when this is empty.
    Logger log = {};
};

/// Session counters. Never reset.
struct SessionStatistics {
    std::uint64_t connections_opened = 0;
    std::uint64_t connections_closed = 0;  ///< by the I/O layer (disconnect) or by the session
    std::uint64_t joins = 0;
    std::uint64_t links = 0;  ///< successful links, first ones and relinks
    std::uint64_t unlinks = 0;
    std::uint64_t leaves = 0;
    std::uint64_t messages = 0;  ///< custom messages handed to the application
    // Link rejections, one counter per check of docs/protocol.md section 1, in its order.
    std::uint64_t rejected_invalid_message = 0;
    std::uint64_t rejected_unlinked_connection = 0;
    std::uint64_t rejected_link_rate = 0;  ///< over link_attempts_per_address_per_second
    std::uint64_t rejected_invalid_link_request = 0;
    std::uint64_t rejected_version = 0;
    std::uint64_t rejected_username = 0;
    std::uint64_t rejected_not_accepting = 0;
    std::uint64_t rejected_already_linked = 0;
    std::uint64_t rejected_new_user_rate = 0;   ///< over new_users_per_address_per_minute
    std::uint64_t rejected_authentication = 0;  ///< the hook's own reasons (and hooks that threw)
    std::uint64_t authentication_timeouts = 0;
    std::uint64_t unlinked_by_bad_message = 0;       ///< a linked connection sent something unparsable or a
                                                     ///< reserved krmx/* type
    std::uint64_t ignored_while_authenticating = 0;  ///< frames on a connection waiting for its answer
    std::uint64_t link_deadline_closes = 0;
    std::uint64_t undeliverable = 0;  ///< send() to a user that is not linked: dropped
    std::uint64_t forgotten_users = 0;  ///< unlinked users forgotten (forget_unlinked_after,
                                        ///< max_unlinked_users); also counted in `leaves`
    std::uint64_t hook_errors = 0;    ///< authentication hooks that threw
    /// The application's callbacks (on_join, on_link, on_unlink, on_leave, on_message) that threw: each is
    /// counted and skipped, the other callbacks and the session go on.
    std::uint64_t callback_errors = 0;

    [[nodiscard]] std::uint64_t rejected() const noexcept {
        return rejected_invalid_message + rejected_unlinked_connection + rejected_link_rate +
               rejected_invalid_link_request + rejected_version + rejected_username + rejected_not_accepting +
               rejected_already_linked + rejected_new_user_rate + rejected_authentication +
               authentication_timeouts;
    }
};

/// A user as the session knows it.
struct SessionUser {
    std::string username;
    bool linked = false;
};

namespace detail {

[[nodiscard]] inline std::string session_user_frame(std::string_view type, std::string_view username) {
    std::string out;
    out.reserve(48 + username.size());
    out += R"({"type":")";
    out += type;
    out += R"(","payload":{"username":)";
    // Usernames passed a predicate the application may have loosened: the one escaper never throws.
    krmx::detail::append_json_string(out, username);
    out += "}}";
    return out;
}

[[nodiscard]] inline std::string session_rejected_frame(std::string_view reason) {
    std::string out = R"({"type":"krmx/rejected","payload":{"reason":)";
    krmx::detail::append_json_string(out, reason);
    return out + "}}";
}

// A string member of a scanned payload, decoded; nothing when absent or not a string.
[[nodiscard]] inline std::optional<std::string> string_field(const Message& message, std::string_view key) {
    const auto* member = message.field(key);
    return member ? krmx::detail::json_string_value(member->value) : std::nullopt;
}

// Readers for nested receive() calls (a hook may deliver another frame synchronously): one per level.
class ReaderStack {
  public:
    class Lease {
      public:
        explicit Lease(ReaderStack& stack) : stack_(stack) {
            if (stack_.depth_ == stack_.readers_.size()) stack_.readers_.push_back(std::make_unique<MessageReader>());
            reader_ = stack_.readers_[stack_.depth_++].get();
        }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease() { --stack_.depth_; }
        MessageReader& operator*() const noexcept { return *reader_; }
        MessageReader* operator->() const noexcept { return reader_; }

      private:
        ReaderStack& stack_;
        MessageReader* reader_;
    };

  private:
    std::vector<std::unique_ptr<MessageReader>> readers_;
    std::size_t depth_ = 0;
};

}  // namespace detail

class Session {
  public:
    explicit Session(SessionSink& sink, SessionOptions options = {}, ClockRef clock = {})
        : sink_(&sink), options_(std::move(options)), clock_(clock) {}
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() = default;

    // --- the I/O layer ------------------------------------------------------------------------------

    /// A new connection is open (for a WebSocket: after the upgrade and the HTTP checks). `address` says
    /// where it comes from (the WebSocket server passes the client's address, one key per IPv4 address or
    /// IPv6 /64); the per-address limits of SessionOptions count by it. Empty: unknown, and not limited.
    [[nodiscard]] ConnectionId connect(std::string_view address = {}) {
        const ConnectionId id = ++last_connection_;
        const bool limited = !address.empty() && (options_.link_attempts_per_address_per_second > 0 ||
                                                   options_.new_users_per_address_per_minute > 0);
        connections_.emplace(id, Connection{clock_.now(), nullptr, std::nullopt,
                                            limited ? std::string{address} : std::string{}});
        if (limited) {
            auto it = addresses_.find(address);
            if (it == addresses_.end()) it = addresses_.emplace(std::string{address}, AddressBudget{}).first;
            ++it->second.connections;
        }
        ++statistics_.connections_opened;
        return id;
    }

    /// One text frame arrived on a connection. Unknown (closed) connections are ignored.
    void receive(ConnectionId connection, std::string_view text) {
        auto* c = find_connection(connection);
        if (!c) return;
        if (c->pending) {
            ++statistics_.ignored_while_authenticating;
            return;
        }
        const detail::ReaderStack::Lease reader{readers_};
        const Message* message = reader->read(text).empty() ? &reader->message() : nullptr;
        if (c->user) {
            linked_message(c->user->username, message);
        } else {
            unlinked_message(connection, message);
        }
        forget_due();
    }

    /// The connection is gone (the peer closed it, the socket failed, the I/O layer gave up on it). Its user
    /// is unlinked. Unknown connections are ignored.
    void disconnect(ConnectionId connection) {
        const auto it = connections_.find(connection);
        if (it == connections_.end()) return;
        forget_connection(it);
        forget_due();
    }

    /// Fires what is due: authentication timeouts and link deadlines. Call it now and then (the WebSocket
    /// server does several times per second); `next_deadline()` says when it matters next.
    void tick() {
        const TimePoint now = clock_.now();
        std::vector<ConnectionId> timed_out;
        std::vector<ConnectionId> too_late;
        for (const auto& [id, c] : connections_) {
            if (c.pending) {
                if (now >= c.pending->deadline) timed_out.push_back(id);
            } else if (!c.user && options_.link_deadline > Duration::zero() &&
                       now >= c.unlinked_since + options_.link_deadline) {
                too_late.push_back(id);
            }
        }
        std::sort(timed_out.begin(), timed_out.end());  // the order of a hash map is no order
        std::sort(too_late.begin(), too_late.end());
        for (const auto id : timed_out) {
            auto* c = find_connection(id);
            if (!c || !c->pending) continue;
            ++statistics_.authentication_timeouts;
            finish_pending(*c, id, std::string{"authentication timeout"});
        }
        for (const auto id : too_late) {
            const auto it = connections_.find(id);
            if (it == connections_.end() || it->second.user || it->second.pending) continue;
            ++statistics_.link_deadline_closes;
            forget_connection(it);
            sink_->close(id, CloseReason::link_deadline);
        }
        forget_due();
        // Addresses with no connection whose budgets are full again carry no information: drop them.
        for (auto it = addresses_.begin(); it != addresses_.end();) {
            it = idle(it->second, now) ? addresses_.erase(it) : std::next(it);
        }
    }

    /// When tick() has something to do next, if anything is waiting.
    [[nodiscard]] std::optional<TimePoint> next_deadline() const {
        std::optional<TimePoint> best;
        const auto consider = [&best](TimePoint t) {
            if (!best || t < *best) best = t;
        };
        for (const auto& [id, c] : connections_) {
            if (c.pending) {
                consider(c.pending->deadline);
            } else if (!c.user && options_.link_deadline > Duration::zero()) {
                consider(c.unlinked_since + options_.link_deadline);
            }
        }
        if (options_.forget_unlinked_after > Duration::zero() && !unlinked_.empty()) {
            consider(unlinked_.front()->unlinked_at + options_.forget_unlinked_after);
        }
        return best;
    }

    /// The server closes (@krmx/server's close): every user leaves, with the usual frames, then every
    /// connection is closed.
    void close_all() {
        const auto users = usernames();
        for (const auto& u : users) leave(u);
        std::vector<ConnectionId> ids;
        ids.reserve(connections_.size());
        for (const auto& [id, c] : connections_) ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        for (const auto id : ids) {
            const auto it = connections_.find(id);
            if (it == connections_.end()) continue;
            forget_connection(it);
            sink_->close(id, CloseReason::server_stopping);
        }
    }

    // --- the application ----------------------------------------------------------------------------

    /// Hooks, in the order they fire for a new user: join, then link. `f(std::string_view username)`.
    Subscription on_join(UserCallback f) { return on_join_.connect(std::move(f)); }
    Subscription on_link(UserCallback f) { return on_link_.connect(std::move(f)); }
    Subscription on_unlink(UserCallback f) { return on_unlink_.connect(std::move(f)); }
    Subscription on_leave(UserCallback f) { return on_leave_.connect(std::move(f)); }
    /// Custom messages of linked users, read once: `f(std::string_view username, const krmx::Message&)`.
    Subscription on_message(UserMessageCallback f) { return on_message_.connect(std::move(f)); }

    /// To one linked user; counted in `undeliverable` and dropped when the user is not linked.
    void send(std::string_view username, std::string text) {
        if (const auto connection = deliverable_to(username)) sink_->send(*connection, share_text(std::move(text)));
    }
    /// The same, without a copy: the text a domain sends to several users (the members of a room).
    void send(std::string_view username, const SharedText& text) {
        if (const auto connection = deliverable_to(username)) sink_->send(*connection, text);
    }
    /// To every linked user, in join order; serialised once.
    void broadcast(std::string text) { broadcast(share_text(std::move(text))); }
    void broadcast(const SharedText& text, std::string_view skip = {}) {
        for (const auto& u : users_) {
            if (u->connection && u->username != skip) sink_->send(*u->connection, text);
        }
    }

    /// Unlinks a linked user (the connection stays open). False when the user is not linked.
    bool unlink(std::string_view username) {
        auto* u = find_user(username);
        if (!u || !u->connection) return false;
        unlink_user(*u, true);
        forget_due();
        return true;
    }
    /// The user leaves (@krmx/server's kick): unlinked first when linked, then forgotten. False when unknown.
    bool kick(std::string_view username) {
        const bool known = leave(username);
        if (known) options_.log.info("user.kicked", "a user was kicked", {{"username", std::string{username}}});
        return known;
    }

    /// Changes whether unknown users may link from now on.
    void accept_new_users(bool accept) noexcept { options_.accept_new_users = accept; }

    // --- what the session knows ---------------------------------------------------------------------

    /// Known users in join order.
    [[nodiscard]] std::vector<SessionUser> users() const {
        std::vector<SessionUser> out;
        out.reserve(users_.size());
        for (const auto& u : users_) out.push_back(SessionUser{u->username, u->connection.has_value()});
        return out;
    }
    [[nodiscard]] bool known(std::string_view username) const { return find_user(username) != nullptr; }
    [[nodiscard]] bool linked(std::string_view username) const {
        const auto* u = find_user(username);
        return u && u->connection;
    }
    /// The connection a user is linked on.
    [[nodiscard]] std::optional<ConnectionId> connection_of(std::string_view username) const {
        const auto* u = find_user(username);
        return u ? u->connection : std::nullopt;
    }
    /// The user linked on a connection.
    [[nodiscard]] std::optional<std::string> user_of(ConnectionId connection) const {
        const auto it = connections_.find(connection);
        if (it == connections_.end() || !it->second.user) return std::nullopt;
        return it->second.user->username;
    }
    [[nodiscard]] bool open(ConnectionId connection) const { return connections_.contains(connection); }
    /// Whether the client of a linked user named `feature` in its link request (`features`); false for
    /// users that are not linked.
    [[nodiscard]] bool has_feature(std::string_view username, std::string_view feature) const {
        const auto* u = find_user(username);
        if (!u || !u->connection) return false;
        return std::find(u->features.begin(), u->features.end(), feature) != u->features.end();
    }
    [[nodiscard]] std::size_t connection_count() const noexcept { return connections_.size(); }
    [[nodiscard]] std::size_t linked_count() const noexcept { return linked_count_; }
    /// Addresses the per-address limits remember now: those with open connections, and those whose
    /// budgets have not refilled yet (tick() drops the others).
    [[nodiscard]] std::size_t tracked_addresses() const noexcept { return addresses_.size(); }
    [[nodiscard]] const SessionStatistics& statistics() const noexcept {
        statistics_.callback_errors = on_join_.errors() + on_link_.errors() + on_unlink_.errors() +
                                      on_leave_.errors() + on_message_.errors();
        return statistics_;
    }
    [[nodiscard]] const SessionOptions& options() const noexcept { return options_; }

  private:
    friend class LinkDecision;

    struct User {
        std::string username;
        std::optional<ConnectionId> connection;
        std::vector<std::string> features;  // of the link, while linked
        // While unlinked: since when, and where in unlinked_ (the order in which users were unlinked).
        TimePoint unlinked_at{};
        std::optional<std::list<User*>::iterator> in_unlinked;
    };
    struct AddressBudget {
        std::size_t connections = 0;
        krmx::detail::TokenBucket links;
        krmx::detail::TokenBucket new_users;
    };
    struct PendingLink {
        std::uint64_t ticket;
        std::string username;
        std::vector<std::string> features;
        TimePoint deadline;
    };
    struct Connection {
        TimePoint unlinked_since;
        User* user = nullptr;
        std::optional<PendingLink> pending;
        std::string address;  // the key of the per-address limits; empty: not limited
    };

    [[nodiscard]] Connection* find_connection(ConnectionId id) {
        const auto it = connections_.find(id);
        return it == connections_.end() ? nullptr : &it->second;
    }
    // The connection of a linked user to send to; none, counted in `undeliverable`, when it is not linked.
    std::optional<ConnectionId> deliverable_to(std::string_view username) {
        auto connection = connection_of(username);
        if (!connection) ++statistics_.undeliverable;
        return connection;
    }
    [[nodiscard]] User* find_user(std::string_view username) const {
        const auto it = by_name_.find(username);
        return it == by_name_.end() ? nullptr : it->second;
    }
    [[nodiscard]] std::vector<std::string> usernames() const {
        std::vector<std::string> out;
        out.reserve(users_.size());
        for (const auto& u : users_) out.push_back(u->username);
        return out;
    }
    [[nodiscard]] bool reserved(std::string_view username) const {
        return std::find(reserved_.begin(), reserved_.end(), username) != reserved_.end();
    }

    void send_frame(ConnectionId connection, std::string text) {
        sink_->send(connection, std::make_shared<const std::string>(std::move(text)));
    }
    void reject(ConnectionId connection, std::string_view reason) {
        if (options_.log) {
            const auto* c = find_connection(connection);
            options_.log.info("link.refused", "a link request was refused",
                              {{"reason", std::string{reason}}, {"address", c ? c->address : std::string{}}});
        }
        send_frame(connection, detail::session_rejected_frame(reason));
    }

    void linked_message(const std::string& username, const Message* message) {
        if (!message) {
            ++statistics_.unlinked_by_bad_message;
            options_.log.warning("user.unlinked", "a linked user sent a message that is no JSON object; it is unlinked",
                                 {{"username", username}});
            unlink(username);
            return;
        }
        const std::string_view type = message->type();
        if (type == "krmx/link" || type == "krmx/unlink") {
            unlink(username);
            return;
        }
        if (type == "krmx/leave") {
            leave(username);
            return;
        }
        if (type.starts_with("krmx/")) {
            ++statistics_.unlinked_by_bad_message;
            unlink(username);
            return;
        }
        ++statistics_.messages;
        const std::string user = username;  // the callbacks may unlink or kick this very user
        on_message_.emit(user, *message);
    }

    void unlinked_message(ConnectionId connection, const Message* message) {
        if (!message) {
            ++statistics_.rejected_invalid_message;
            reject(connection, "invalid message");
            return;
        }
        if (message->type() != "krmx/link") {
            ++statistics_.rejected_unlinked_connection;
            reject(connection, "unlinked connection");
            return;
        }
        auto* budget = budget_of(connection);
        if (budget && options_.link_attempts_per_address_per_second > 0 &&
            !budget->links.take(clock_.now(), options_.link_attempts_per_address_per_second,
                                std::chrono::seconds{1})) {
            ++statistics_.rejected_link_rate;
            reject(connection, "too many link attempts");
            return;
        }
        auto request = parse_link(connection, *message);
        if (!request) {
            ++statistics_.rejected_invalid_link_request;
            reject(connection, "invalid link request");
            return;
        }
        if (!request->version.starts_with(options_.version_prefix)) {
            ++statistics_.rejected_version;
            reject(connection, "krmx server version mismatch (server=" + options_.version_prefix +
                                   ".*,client=" + request->version + ")");
            return;
        }
        if (!valid_username(request->username)) {
            ++statistics_.rejected_username;
            reject(connection, "invalid username");
            return;
        }
        const User* existing = find_user(request->username);
        request->is_new_user = existing == nullptr;
        if (request->is_new_user && !options_.accept_new_users) {
            ++statistics_.rejected_not_accepting;
            reject(connection, "server is not accepting new users");
            return;
        }
        if ((existing && existing->connection) || reserved(request->username)) {
            ++statistics_.rejected_already_linked;
            reject(connection, "user " + request->username + " is already linked to a connection");
            return;
        }
        if (request->is_new_user && budget && options_.new_users_per_address_per_minute > 0 &&
            !budget->new_users.take(clock_.now(), options_.new_users_per_address_per_minute,
                                    std::chrono::minutes{1})) {
            ++statistics_.rejected_new_user_rate;
            reject(connection, "too many new users");
            return;
        }
        if (!options_.authenticate) {
            complete_link(connection, request->username, std::move(request->features));
            return;
        }
        // The name is reserved while the hook decides, so that nobody else links it meanwhile.
        auto* c = find_connection(connection);
        const std::uint64_t ticket = ++last_ticket_;
        c->pending = PendingLink{ticket, request->username, request->features,
                                 clock_.now() + options_.authentication_timeout};
        reserved_.push_back(request->username);
        try {
            options_.authenticate(*request, LinkDecision{this, alive_, ticket});
        } catch (...) {
            ++statistics_.hook_errors;
            options_.log.error("authentication.hook_failed", "the authentication hook threw; the link is refused",
                               {{"username", request->username}});
            answer(ticket, std::string{"authentication failed"});
        }
    }

    [[nodiscard]] bool valid_username(std::string_view username) const {
        if (!options_.is_valid_username) return is_krmx_username(username);
        try {
            return options_.is_valid_username(username);
        } catch (...) {
            return false;
        }
    }

    // Check 3: payload an object, username and version strings, auth absent or a string, features absent
    // or an array of strings.
    [[nodiscard]] static std::optional<LinkRequest> parse_link(ConnectionId connection, const Message& message) {
        if (!message.payload_is_object()) return std::nullopt;
        LinkRequest request;
        request.connection = connection;
        auto name = detail::string_field(message, "username");
        auto version = detail::string_field(message, "version");
        if (!name || !version) return std::nullopt;
        request.username = std::move(*name);
        request.version = std::move(*version);
        if (message.field("auth")) {
            request.auth = detail::string_field(message, "auth");
            if (!request.auth) return std::nullopt;
        }
        if (const auto* features = message.field("features")) {
            // Rare and small: read with nlohmann (the scanner validated it already, so it parses).
            const auto list = nlohmann::json::parse(features->value, nullptr, false);
            if (!list.is_array()) return std::nullopt;
            for (const auto& feature : list) {
                if (!feature.is_string()) return std::nullopt;
                request.features.push_back(feature.get<std::string>());
            }
        }
        return request;
    }

    // An authentication answered (or timed out, or its hook threw).
    void answer(std::uint64_t ticket, std::optional<std::string> rejection) {
        for (auto& [id, c] : connections_) {
            if (c.pending && c.pending->ticket == ticket) {
                if (rejection) ++statistics_.rejected_authentication;
                finish_pending(c, id, std::move(rejection));
                return;
            }
        }
    }

    void finish_pending(Connection& c, ConnectionId id, std::optional<std::string> rejection) {
        const std::string username = std::move(c.pending->username);
        auto features = std::move(c.pending->features);
        c.pending.reset();
        std::erase(reserved_, username);
        if (rejection) {
            reject(id, *rejection);
            return;
        }
        complete_link(id, username, std::move(features));
    }

    void complete_link(ConnectionId connection, const std::string& username, std::vector<std::string> features) {
        if (!find_connection(connection)) return;
        send_frame(connection, R"({"type":"krmx/accepted"})");
        if (!find_user(username)) {
            // Join: the others hear of the new user first, then the user exists (last in join order).
            broadcast(
                std::make_shared<const std::string>(detail::session_user_frame("krmx/joined", username)));
            users_.push_back(std::make_unique<User>(User{username, std::nullopt, {}, {}, std::nullopt}));
            by_name_.emplace(users_.back()->username, users_.back().get());
            ++statistics_.joins;
            on_join_.emit(username);
        }
        auto* c = find_connection(connection);
        auto* u = find_user(username);
        if (!c || !u || c->user || u->connection) return;  // a join hook changed the picture: stop here
        c->user = u;
        u->connection = connection;
        u->features = std::move(features);
        drop_unlinked(*u);
        ++linked_count_;
        ++statistics_.links;
        for (const auto& other : users_) {
            send_frame(connection, detail::session_user_frame("krmx/joined", other->username));
            if (other->connection) {
                send_frame(connection, detail::session_user_frame("krmx/linked", other->username));
            }
        }
        broadcast(std::make_shared<const std::string>(detail::session_user_frame("krmx/linked", username)),
                  username);
        on_link_.emit(username);
    }

    // Unlink: everyone linked hears it, the user too (when its connection is still open).
    void unlink_user(User& u, bool tell_user) {
        const ConnectionId connection = *u.connection;
        auto frame =
            std::make_shared<const std::string>(detail::session_user_frame("krmx/unlinked", u.username));
        for (const auto& other : users_) {
            if (!other->connection) continue;
            if (other.get() == &u && !tell_user) continue;
            sink_->send(*other->connection, frame);
        }
        u.connection.reset();
        u.features.clear();
        u.unlinked_at = clock_.now();
        u.in_unlinked = unlinked_.insert(unlinked_.end(), &u);
        --linked_count_;
        if (auto* c = find_connection(connection)) {
            c->user = nullptr;
            c->unlinked_since = clock_.now();
        }
        ++statistics_.unlinks;
        const std::string username = u.username;  // the user may leave from inside the hooks
        on_unlink_.emit(username);
    }

    bool leave(std::string_view name) {
        auto* u = find_user(name);
        if (!u) return false;
        const std::string username = u->username;
        const auto frame =
            std::make_shared<const std::string>(detail::session_user_frame("krmx/left", username));
        if (u->connection) {
            const ConnectionId connection = *u->connection;
            unlink_user(*u, true);
            if (find_connection(connection)) sink_->send(connection, frame);
            u = find_user(username);
            if (!u) return true;  // an unlink hook made the user leave already
        }
        broadcast(frame);
        u = find_user(username);
        if (!u) return true;
        drop_unlinked(*u);
        by_name_.erase(u->username);
        std::erase_if(users_, [u](const std::unique_ptr<User>& p) { return p.get() == u; });
        ++statistics_.leaves;
        on_leave_.emit(username);
        return true;
    }

    void drop_unlinked(User& u) {
        if (u.in_unlinked) unlinked_.erase(*std::exchange(u.in_unlinked, std::nullopt));
    }

    // Forgets the unlinked users that have been unlinked too long, or that are too many (oldest first).
    // Called at the end of each entry point, not in the middle of an unlink, so that the frames of one
    // unlink or leave are never interleaved with another user's.
    void forget_due() {
        if (forgetting_ || unlinked_.empty()) return;
        const bool by_time = options_.forget_unlinked_after > Duration::zero();
        const bool by_count = options_.max_unlinked_users > 0;
        if (!by_time && !by_count) return;
        forgetting_ = true;
        const TimePoint now = clock_.now();
        while (!unlinked_.empty()) {
            User* oldest = unlinked_.front();
            const bool too_many = by_count && unlinked_.size() > options_.max_unlinked_users;
            const bool too_old = by_time && now >= oldest->unlinked_at + options_.forget_unlinked_after;
            if (!too_many && !too_old) break;
            ++statistics_.forgotten_users;
            const std::string name = oldest->username;
            (void)leave(name);
            if (!unlinked_.empty() && unlinked_.front() == oldest) break;  // a hook kept it: try next time
        }
        forgetting_ = false;
    }

    [[nodiscard]] AddressBudget* budget_of(ConnectionId connection) {
        const auto* c = find_connection(connection);
        if (!c || c->address.empty()) return nullptr;
        const auto it = addresses_.find(c->address);
        return it == addresses_.end() ? nullptr : &it->second;
    }

    [[nodiscard]] bool idle(AddressBudget& b, TimePoint now) const {
        return b.connections == 0 &&
               (options_.link_attempts_per_address_per_second == 0 ||
                b.links.full(now, options_.link_attempts_per_address_per_second, std::chrono::seconds{1})) &&
               (options_.new_users_per_address_per_minute == 0 ||
                b.new_users.full(now, options_.new_users_per_address_per_minute, std::chrono::minutes{1}));
    }

    void forget_connection(std::unordered_map<ConnectionId, Connection>::iterator it) {
        User* u = it->second.user;
        if (it->second.pending) std::erase(reserved_, it->second.pending->username);
        if (!it->second.address.empty()) {
            const auto a = addresses_.find(it->second.address);
            if (a != addresses_.end() && --a->second.connections == 0 && idle(a->second, clock_.now())) {
                addresses_.erase(a);
            }
        }
        connections_.erase(it);
        ++statistics_.connections_closed;
        if (u) unlink_user(*u, false);
    }

    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    SessionSink* sink_;
    SessionOptions options_;
    ClockRef clock_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // LinkDecisions outliving the session see it
    std::unordered_map<ConnectionId, Connection> connections_;
    std::vector<std::unique_ptr<User>> users_;  // join order
    std::unordered_map<std::string_view, User*, NameHash, std::equal_to<>> by_name_;
    std::vector<std::string> reserved_;  // usernames waiting for an authentication answer
    std::list<User*> unlinked_;          // unlinked users, the one unlinked longest ago first
    bool forgetting_ = false;
    std::unordered_map<std::string, AddressBudget, NameHash, std::equal_to<>> addresses_;
    detail::ReaderStack readers_;
    ConnectionId last_connection_ = 0;
    std::uint64_t last_ticket_ = 0;
    std::size_t linked_count_ = 0;
    mutable SessionStatistics statistics_;  // callback_errors is read from the signals when asked
    krmx::detail::Signal<std::string_view> on_join_;
    krmx::detail::Signal<std::string_view> on_link_;
    krmx::detail::Signal<std::string_view> on_unlink_;
    krmx::detail::Signal<std::string_view> on_leave_;
    krmx::detail::Signal<std::string_view, const Message&> on_message_;
};

inline void LinkDecision::answer(std::optional<std::string> rejection) const {
    if (alive_.expired()) return;
    session_->answer(ticket_, std::move(rejection));
}

static_assert(ServerTransport<Session>);

}  // namespace krmx::net

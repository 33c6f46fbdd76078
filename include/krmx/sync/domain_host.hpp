#pragma once
// krmx::DomainHost: the server end of the domain protocols on one transport. It takes every message a
// linked user sends, once read (a krmx::Message), and hands each `stream/*` and `projection/*` message to
// the domain its payload names; several domains share one host without seeing each other's messages. It
// also tells every domain when users link and unlink, and lends them the transport's event loop (for
// durable commits).
//
//   krmx::net::WebSocketServer server{{.port = 8082}};        // owns a host: server.host()
//   krmx::StreamDomain counter{server, "counter", counter::model()};
//
//   krmx::DomainHost host{transport};                          // a host on a transport of your own
//   krmx::StreamDomain counter{host, "counter", counter::model()};
//
// One host per transport: two would both answer every message. Bad input never throws out of the
// transport's callback and never changes a domain: it is counted here (before a domain is known) or in the
// domain's statistics, answered with `stream/invalidate` when the message names an id to invalidate, and
// otherwise dropped.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/log.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/shared_text.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/sync/domain_report.hpp"
#include "krmx/sync/projection_messages.hpp"
#include "krmx/sync/stream_messages.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx {

struct DomainHostOptions {
    /// The one message size limit, both ways: longer messages from users are dropped unread, and every
    /// message the domains send (broadcasts, history pages) fits it. Clients must accept at least this
    /// much (StreamClientOptions::max_message_bytes, 64 MiB by default).
    std::size_t max_message_bytes = std::size_t{1} << 20;
};

/// What the host saw before a message reached a domain. Never reset.
struct DomainHostStatistics {
    std::uint64_t messages = 0;          ///< every message received from a user
    std::uint64_t oversized = 0;         ///< longer than max_message_bytes: dropped unread
    std::uint64_t other_protocol = 0;    ///< `type` is neither `stream/*` nor `projection/*`: left to others
    /// A `stream/*` or `projection/*` message that is no append, resync or action with a payload naming a domain.
    std::uint64_t malformed = 0;
    std::uint64_t unknown_domain = 0;    ///< a message for a domain this host does not have
    std::uint64_t invalidates_sent = 0;  ///< answers to appends for unknown domains that named an id
};

/// The event loop a transport runs on, as domains need it: `post(f)` runs `f` on the loop's thread and may
/// be called from any thread; `hold()` (optional) returns a token that keeps a loop which stops when it is
/// idle (krmx::testing::Hub) waiting for work that will post to it, until the token is gone; `after(d, f)`
/// (optional, on the loop's thread) runs `f` there once `d` has passed.
struct EventLoop {
    std::function<void(std::function<void()>)> post;
    std::function<std::shared_ptr<void>()> hold;
    std::function<void(std::chrono::milliseconds, std::function<void()>)> after;
};

/// What a client announced when it linked: which optional protocol features it reads.
struct LinkedUser {
    /// It reads `stream/history` pages on link (krmx's C++ clients). Otherwise it is sent each event as a
    /// `stream/append`, which is what the JavaScript Krmx clients read.
    bool reads_history_pages = false;
    /// It reads `stream/snapshot` (krmx's C++ clients): a late joiner may be sent the state at a position and
    /// the events after it instead of every event. The JavaScript Krmx clients never announce it.
    bool reads_snapshots = false;
};

/// The feature a client names in its link request when it reads `stream/history` pages.
inline constexpr std::string_view history_pages_feature = "stream/history";
/// The feature a client names in its link request when it reads `stream/snapshot`.
inline constexpr std::string_view snapshot_feature = "stream/snapshot";

/// How an inspection ends: the JSON asked for, or why there is none.
using InspectDone = std::function<void(nlohmann::json result, std::optional<std::string> error)>;

namespace detail {

// What a host routes to: one domain (krmx::StreamDomain).
class HostedDomain {
  public:
    virtual ~HostedDomain() = default;
    virtual void user_linked(std::string_view user, const LinkedUser& link) = 0;
    virtual void user_unlinked(std::string_view user) = 0;
    /// A `stream/append`, `stream/resync` or `projection/action` whose payload names this domain.
    virtual void receive(std::string_view user, const Message& message) = 0;
    /// What it tells about itself now (DomainHost::reports()).
    [[nodiscard]] virtual DomainReport report() const = 0;
    /// For the inspector: confirmed events [from, from + count) as `[{"position","dispatcher","event"}]`,
    /// and the state after the first `position` events as JSON. `done` runs on the host's thread, in the
    /// call or later (old events are read from the store).
    virtual void inspect_events(std::size_t from, std::size_t count, InspectDone done) {
        (void)from;
        (void)count;
        done({}, std::optional<std::string>{"this domain cannot be inspected"});
    }
    virtual void inspect_state(std::size_t position, InspectDone done) {
        (void)position;
        done({}, std::optional<std::string>{"this domain cannot be inspected"});
    }

  protected:
    HostedDomain() = default;
    HostedDomain(const HostedDomain&) = default;
    HostedDomain& operator=(const HostedDomain&) = default;
};

}  // namespace detail

class DomainHost {
  public:
    template <class Transport>
    explicit DomainHost(Transport& transport, DomainHostOptions options = {}) : options_(options) {
        static_assert(detail::check_server_transport<Transport>());
        send_ = [&transport](std::string_view user, std::string text) { transport.send(user, std::move(text)); };
        broadcast_ = [&transport](std::string text) { transport.broadcast(std::move(text)); };
        if constexpr (SharedTextTransport<Transport>) {
            send_shared_ = [&transport](std::string_view user, const SharedText& text) { transport.send(user, text); };
        } else {
            send_shared_ = [&transport](std::string_view user, const SharedText& text) { transport.send(user, *text); };
        }
        if constexpr (requires(Transport& t, std::string_view u) {
                          { t.has_feature(u, u) } -> std::convertible_to<bool>;
                      }) {
            link_of_ = [&transport](std::string_view user) {
                return LinkedUser{.reads_history_pages = transport.has_feature(user, history_pages_feature),
                                  .reads_snapshots = transport.has_feature(user, snapshot_feature)};
            };
        }
        if constexpr (requires(Transport& t, std::function<void()> f) { t.post(std::move(f)); }) {
            loop_.post = [&transport](std::function<void()> f) { transport.post(std::move(f)); };
        }
        if constexpr (requires(Transport& t) {
                          { t.hold() } -> std::convertible_to<std::shared_ptr<void>>;
                      }) {
            loop_.hold = [&transport] { return std::shared_ptr<void>{transport.hold()}; };
        }
        if constexpr (requires(Transport& t, std::function<void()> f) { t.after(std::chrono::milliseconds{1}, std::move(f)); }) {
            loop_.after = [&transport](std::chrono::milliseconds delay, std::function<void()> f) {
                transport.after(delay, std::move(f));
            };
        }
        if constexpr (requires(Transport& t) {
                          { t.log() } -> std::convertible_to<const Logger&>;
                      }) {
            log_ = transport.log();
        }
        subscriptions_[0] = transport.on_link([this](std::string_view user) { linked(user); });
        subscriptions_[1] = transport.on_unlink([this](std::string_view user) { unlinked(user); });
        subscriptions_[2] =
            transport.on_message([this](std::string_view user, const Message& message) { receive(user, message); });
    }
    DomainHost(const DomainHost&) = delete;
    DomainHost& operator=(const DomainHost&) = delete;

    [[nodiscard]] const DomainHostStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] const DomainHostOptions& options() const noexcept { return options_; }
    [[nodiscard]] bool has_domain(std::string_view domain) const { return domains_.find(domain) != domains_.end(); }
    /// The domains served, in name order.
    [[nodiscard]] std::vector<std::string> domains() const {
        std::vector<std::string> out;
        for (const auto& [name, _] : domains_) out.push_back(name);
        return out;
    }
    /// The transport's log (one that writes nothing when the transport has none), for domains' notable events.
    [[nodiscard]] const Logger& log() const noexcept { return log_; }
    /// The transport's event loop (empty `post` when the transport has none).
    [[nodiscard]] const EventLoop& loop() const noexcept { return loop_; }

    /// Every domain's report, in name order (for metrics and readiness probes).
    [[nodiscard]] std::vector<DomainReport> reports() const {
        std::vector<DomainReport> out;
        out.reserve(domains_.size());
        for (const auto& [name, domain] : domains_) out.push_back(domain->report());
        return out;
    }
    /// For the inspector (net/inspector.hpp): a domain's confirmed events [from, from + count) and its state
    /// after `position` events, as JSON (HostedDomain::inspect_events, inspect_state); an unknown domain is
    /// an error. `done` runs on the host's thread.
    void inspect_events(std::string_view domain, std::size_t from, std::size_t count, InspectDone done) {
        const auto it = domains_.find(domain);
        if (it == domains_.end()) return done({}, "no domain " + detail::quoted(domain));
        it->second->inspect_events(from, count, std::move(done));
    }
    void inspect_state(std::string_view domain, std::size_t position, InspectDone done) {
        const auto it = domains_.find(domain);
        if (it == domains_.end()) return done({}, "no domain " + detail::quoted(domain));
        it->second->inspect_state(position, std::move(done));
    }

    /// Why each domain that cannot serve as it should cannot ("domain \"x\": last commit failed: ..."); empty
    /// when all can.
    [[nodiscard]] std::vector<std::string> not_ready() const {
        std::vector<std::string> out;
        for (const auto& [name, domain] : domains_) {
            if (auto why = domain->report().not_ready) out.push_back("domain " + detail::quoted(name) + ": " + *why);
        }
        return out;
    }
    /// Latencies go to `observer` from now on (nullptr: nowhere, and domains stop reading the clock for them).
    void observe(DomainObserver* observer) noexcept { observer_ = observer; }
    /// For domains: where latencies go, if anywhere.
    [[nodiscard]] DomainObserver* observer() const noexcept { return observer_; }

    /// Sends to one user / every linked user, through the transport. For domains.
    void send(std::string_view user, std::string text) { send_(user, std::move(text)); }
    /// One text for several users (a room's members): shared, not copied, where the transport can.
    void send(std::string_view user, const SharedText& text) { send_shared_(user, text); }
    void broadcast(std::string text) { broadcast_(std::move(text)); }

    /// Called by domains; a domain name can be served once per host.
    void attach(std::string domain, detail::HostedDomain& target) {
        if (domains_.find(domain) != domains_.end()) {
            throw std::invalid_argument("krmx::DomainHost: domain " + detail::quoted(domain) + " is served already");
        }
        order_.push_back(&target);
        domains_.emplace(std::move(domain), &target);
    }
    void detach(std::string_view domain) noexcept {
        const auto it = domains_.find(domain);
        if (it == domains_.end()) return;
        std::erase(order_, it->second);
        domains_.erase(it);
    }

    /// The transport's callbacks; public so that a caller that drives a host by hand may call them.
    void linked(std::string_view user) {
        const LinkedUser link = link_of_ ? link_of_(user) : LinkedUser{};
        const auto targets = order_;  // a domain may be detached from a callback
        for (auto* domain : targets) domain->user_linked(user, link);
    }
    void unlinked(std::string_view user) {
        const auto targets = order_;
        for (auto* domain : targets) domain->user_unlinked(user);
    }
    void receive(std::string_view user, const Message& message) {
        ++statistics_.messages;
        if (message.text().size() > options_.max_message_bytes) {
            ++statistics_.oversized;
            return;
        }
        if (!message.type().starts_with(stream_message::prefix) && !message.type().starts_with(projection_message::prefix)) {
            ++statistics_.other_protocol;
            return;
        }
        // What clients send: the server's own message types coming from a client are malformed too.
        const bool client_type = message.type() == stream_message::append || message.type() == stream_message::resync ||
                                 message.type() == projection_message::action;
        const auto* domain_field = client_type && message.payload_is_object() ? message.field("domain") : nullptr;
        const auto domain = domain_field ? detail::json_string_value(domain_field->value) : std::nullopt;
        if (!domain) {
            ++statistics_.malformed;
            return;
        }
        const auto it = domains_.find(*domain);
        if (it == domains_.end()) {
            ++statistics_.unknown_domain;
            if (message.type() == stream_message::append) refuse_unknown_domain(user, *domain, message);
            if (message.type() == projection_message::action) refuse_unknown_projection(user, *domain, message);
            return;
        }
        it->second->receive(user, message);
    }

  private:
    void refuse_unknown_domain(std::string_view user, const std::string& domain, const Message& message) {
        const auto* id_member = message.field("id");
        const auto id = id_member ? detail::raw_unsigned(id_member->value) : std::nullopt;
        if (!id) return;  // nothing the client could match an answer to
        const auto* event = message.field("event");
        ++statistics_.invalidates_sent;
        send(user, detail::invalidate_message(domain, id, event ? event->value : std::string_view{},
                                              "unknown domain " + detail::quoted(domain)));
    }

    void refuse_unknown_projection(std::string_view user, const std::string& domain, const Message& message) {
        const auto* id_member = message.field("optimisticId");
        const auto id = id_member ? detail::optimistic_id(id_member->value) : std::nullopt;
        if (!id) return;
        ++statistics_.invalidates_sent;
        send(user, detail::projection_invalidate_message(domain, *id, "unknown domain " + detail::quoted(domain)));
    }

    DomainHostOptions options_;
    DomainHostStatistics statistics_;
    std::function<void(std::string_view, std::string)> send_;
    std::function<void(std::string)> broadcast_;
    std::function<void(std::string_view, const SharedText&)> send_shared_;
    std::function<LinkedUser(std::string_view)> link_of_;
    EventLoop loop_;
    Logger log_;
    std::map<std::string, detail::HostedDomain*, std::less<>> domains_;
    std::vector<detail::HostedDomain*> order_;  // attach order: histories go out in it
    DomainObserver* observer_ = nullptr;
    Subscription subscriptions_[3];
};

}  // namespace krmx

#pragma once
// StreamHost: the server end of the stream protocol on one transport. It reads every message once,
// refuses what is not a well-formed `stream/*` message, and hands appends and resync requests to the
// StreamServer of their domain; several domains share one host without seeing each other's messages.
//
// Every message is held to krmx's one wire grammar (core/detail/json_scan.hpp): a message that a C++ or
// JavaScript client could read differently from the server, or not at all, is refused whole, so nothing
// it carries can reach a stream, a history or a store. Events nest at most json_max_event_depth levels.
//
//   krmx::StreamHost host{transport};                                     // one per transport
//   krmx::StreamServer counter{host, "my-claimable-counter", counter::model()};   // one per domain
//
// Bad input never throws out of the transport's callback and never changes a stream: it is counted here
// (before a domain is known) or in the domain's statistics, answered with `stream/invalidate` when the
// message names an id to invalidate, and otherwise dropped.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/sync/messages.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx {

struct StreamHostOptions {
    /// The one message size limit, both ways: longer messages from users are dropped unread, and every
    /// message the domains send (broadcasts, history pages) fits it. Clients must accept at least this
    /// much (StreamClientOptions::max_message_bytes, 64 MiB by default).
    std::size_t max_message_bytes = std::size_t{1} << 20;
};

/// What the host saw before a message reached a domain. Never reset.
struct StreamHostStatistics {
    std::uint64_t messages = 0;          ///< every message received from a user
    std::uint64_t oversized = 0;         ///< longer than max_message_bytes: dropped unread
    std::uint64_t not_json = 0;          ///< not exactly one JSON object with a string `type`: dropped
    std::uint64_t other_protocol = 0;    ///< well-formed, but `type` is not `stream/*`: left to others
    std::uint64_t malformed = 0;  ///< a `stream/*` message that is not a valid append or resync: dropped
    std::uint64_t unknown_domain = 0;    ///< an append for a domain this host does not have
    std::uint64_t invalidates_sent = 0;  ///< answers to appends for unknown domains that named an id
};

namespace detail {

// What a host routes to: implemented by StreamServer.
class StreamDomain {
  public:
    virtual ~StreamDomain() = default;
    virtual void user_linked(std::string_view user) = 0;
    virtual void user_unlinked(std::string_view user) = 0;
    /// A `stream/append` for this domain from `user`; `payload` holds the raw members of its payload.
    virtual void append_from(std::string_view user, const std::vector<JsonMember>& payload) = 0;
    /// A `stream/resync` (a client asks for the history from a position) for this domain.
    virtual void resync_from(std::string_view user, const std::vector<JsonMember>& payload) = 0;

  protected:
    StreamDomain() = default;
    StreamDomain(const StreamDomain&) = default;
    StreamDomain& operator=(const StreamDomain&) = default;
};

}  // namespace detail

class StreamHost {
  public:
    template <class Transport>
    explicit StreamHost(Transport& transport, StreamHostOptions options = {}) : options_(options) {
        static_assert(detail::check_server_transport<Transport>());
        send_ = [&transport](std::string_view user, std::string text) {
            transport.send(user, std::move(text));
        };
        broadcast_ = [&transport](std::string text) {
            transport.broadcast(std::move(text));
        };
        subscriptions_[0] = transport.on_link([this](std::string_view user) { linked(user); });
        subscriptions_[1] = transport.on_unlink([this](std::string_view user) { unlinked(user); });
        subscriptions_[2] = transport.on_message(
            [this](std::string_view user, std::string_view text) { receive(user, text); });
    }
    StreamHost(const StreamHost&) = delete;
    StreamHost& operator=(const StreamHost&) = delete;

    [[nodiscard]] const StreamHostStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] const StreamHostOptions& options() const noexcept { return options_; }
    [[nodiscard]] bool has_domain(std::string_view domain) const {
        return domains_.find(domain) != domains_.end();
    }
    /// The domains served, in name order.
    [[nodiscard]] std::vector<std::string> domains() const {
        std::vector<std::string> out;
        for (const auto& [name, _] : domains_) out.push_back(name);
        return out;
    }

    /// Sends to one user / every linked user, through the transport. For StreamServers.
    void send(std::string_view user, std::string text) { send_(user, std::move(text)); }
    void broadcast(std::string text) { broadcast_(std::move(text)); }

    /// Called by StreamServer; a domain name can be served once per host.
    void attach(std::string domain, detail::StreamDomain& target) {
        if (domains_.find(domain) != domains_.end()) {
            throw std::invalid_argument("krmx::StreamHost: domain '" + domain + "' is served already");
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
        const auto targets = order_;  // a domain may be detached from a callback
        for (auto* domain : targets) domain->user_linked(user);
    }
    void unlinked(std::string_view user) {
        const auto targets = order_;
        for (auto* domain : targets) domain->user_unlinked(user);
    }
    void receive(std::string_view user, std::string_view text) {
        // The scratch vectors are lent out for the call, so a transport that delivers synchronously from
        // inside a send (re-entering here) cannot pull them from under the outer call.
        struct Lend {
            std::vector<detail::JsonMember>& home;
            std::vector<detail::JsonMember> v = std::move(home);
            ~Lend() { home = std::move(v); }
        } members{members_}, payload{payload_};
        members.v.clear();
        payload.v.clear();
        receive(user, text, members.v, payload.v);
    }

  private:
    void receive(std::string_view user, std::string_view text, std::vector<detail::JsonMember>& members,
                 std::vector<detail::JsonMember>& fields) {
        ++statistics_.messages;
        if (text.size() > options_.max_message_bytes) {
            ++statistics_.oversized;
            return;
        }
        // The message around an append's event: message, payload, event.
        constexpr int depth = detail::json_max_event_depth + 2;
        if (!detail::scan_object(text, members, "payload", fields, depth).empty()) {
            ++statistics_.not_json;
            return;
        }
        const auto* type_member = detail::find_member(members, "type");
        const auto type = type_member ? detail::json_string_value(type_member->value) : std::nullopt;
        if (!type) {
            ++statistics_.not_json;
            return;
        }
        if (!type->starts_with(stream_message::prefix)) {
            ++statistics_.other_protocol;
            return;
        }
        const auto* payload = detail::find_member(members, "payload");
        const bool append = *type == stream_message::append;
        if ((!append && *type != stream_message::resync) || !payload ||
            detail::json_raw_kind(payload->value) != "object") {
            ++statistics_.malformed;
            return;
        }
        const auto* domain_member = detail::find_member(fields, "domain");
        const auto domain = domain_member ? detail::json_string_value(domain_member->value) : std::nullopt;
        if (!domain) {
            ++statistics_.malformed;
            return;
        }
        const auto it = domains_.find(*domain);
        if (it == domains_.end()) {
            ++statistics_.unknown_domain;
            if (append) refuse_unknown_domain(user, *domain, fields);
            return;
        }
        if (append) {
            it->second->append_from(user, fields);
        } else {
            it->second->resync_from(user, fields);
        }
    }

    void refuse_unknown_domain(std::string_view user, const std::string& domain,
                               const std::vector<detail::JsonMember>& fields) {
        const auto* id_member = detail::find_member(fields, "id");
        const auto id = id_member ? detail::raw_unsigned(id_member->value) : std::nullopt;
        if (!id) return;  // nothing the client could match an answer to
        const auto* event = detail::find_member(fields, "event");
        ++statistics_.invalidates_sent;
        send(user, detail::invalidate_message(domain, id, event ? event->value : std::string_view{},
                                              "unknown domain '" + domain + "'"));
    }

    StreamHostOptions options_;
    StreamHostStatistics statistics_;
    std::function<void(std::string_view, std::string)> send_;
    std::function<void(std::string)> broadcast_;
    std::map<std::string, detail::StreamDomain*, std::less<>> domains_;
    std::vector<detail::StreamDomain*> order_;  // attach order: histories go out in it
    std::vector<detail::JsonMember> members_;
    std::vector<detail::JsonMember> payload_;
    Subscription subscriptions_[3];
};

}  // namespace krmx

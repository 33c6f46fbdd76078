#pragma once
// StreamClient<State>: the client end of one domain's stream (PROTOCOL.md, section 2). The seed's client
// `registerStream(client, 'my-claimable-counter', model, { optimisticSeconds: 10 })`:
//
//   krmx::StreamClient counter{transport, "my-claimable-counter", counter::model(), {.optimistic_seconds =
//   10}}; counter.dispatch(counter::increment(3));   // applied at once, sent, later confirmed or invalidated
//   counter.state();                           // optimistic; confirmed_state() and pending() too
//
// It owns an OptimisticStream: own events are applied at once and sent as `stream/append` with an id; the
// server's `stream/append` confirms them (or is someone else's event), `stream/invalidate` drops them, and
// they expire after `optimistic_seconds` (on every touch, and on the transport's ticks when it has them).
// On its own link and unlink the stream resets; the history the server sends after a link rebuilds it.
// Messages it cannot use are counted and ignored; they never change the state.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/stream/optimistic_stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/messages.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx {

struct StreamClientOptions {
    /// How long an own event waits for the server's answer before it is dropped from the optimistic state.
    double optimistic_seconds = 10.0;
    /// Messages longer than this are ignored unread (a history can be long: keep it generous).
    std::size_t max_message_bytes = std::size_t{64} << 20;
};

/// Per-client counters. Never reset.
struct StreamClientStatistics {
    std::uint64_t sent = 0;          ///< own events sent
    std::uint64_t histories = 0;     ///< `stream/history` messages applied
    std::uint64_t events = 0;        ///< server events applied (history and appends)
    std::uint64_t invalidated = 0;   ///< `stream/invalidate` that dropped a pending event
    std::uint64_t duplicates = 0;    ///< server events at positions already applied: skipped
    std::uint64_t out_of_order = 0;  ///< server events past a gap: skipped (a relink resynchronises)
    std::uint64_t divergent = 0;     ///< server events this client's model refused (see OptimisticStream)
    std::uint64_t ignored = 0;       ///< unusable messages for this domain, oversized or unparsable ones
};

template <class State>
class StreamClient {
  public:
    using state_type = State;

    /// Uses the transport's clock when it has one (`transport.clock()`, as krmx::testing::Hub's clients
    /// do), else the steady clock.
    template <class Transport>
    StreamClient(Transport& transport, std::string domain, const StreamModel<State>& model,
                 StreamClientOptions options = {})
        : StreamClient(transport, std::move(domain), model, options, default_clock(transport)) {}

    template <class Transport>
    StreamClient(Transport& transport, std::string domain, const StreamModel<State>& model,
                 StreamClientOptions options, ClockRef clock)
        : domain_(std::move(domain)), options_(options), stream_(model, {options.optimistic_seconds}, clock) {
        static_assert(detail::check_client_transport<Transport>());
        send_ = [&transport](std::string text) {
            transport.send(std::move(text));
        };
        subscriptions_[0] = transport.on_link([this](std::string_view user) { linked(user); });
        subscriptions_[1] = transport.on_unlink([this] { unlinked(); });
        subscriptions_[2] = transport.on_message([this](std::string_view text) { receive(text); });
        if constexpr (TickingTransport<Transport>) {
            subscriptions_[3] = transport.on_tick([this] { (void)stream_.flush_expired(); });
        }
    }
    StreamClient(const StreamClient&) = delete;
    StreamClient& operator=(const StreamClient&) = delete;

    /// Applies an own event optimistically and sends it. Refused locally (then not sent) when the model
    /// refuses it on the optimistic state, or `failed` "not linked" while the client is not linked.
    template <class P>
    OptimisticDispatch dispatch(const TypedEvent<P>& event) {
        if (!linked_) return not_linked(event.to_json());
        return send_if_accepted(stream_.dispatch(event));
    }
    OptimisticDispatch dispatch(const nlohmann::json& event) {
        if (!linked_) return not_linked(event);
        return send_if_accepted(stream_.dispatch(event));
    }

    /// The optimistic state: confirmed + pending.
    [[nodiscard]] const State& state() const noexcept { return stream_.state(); }
    [[nodiscard]] const State& confirmed_state() const noexcept { return stream_.confirmed_state(); }
    [[nodiscard]] std::vector<PendingEvent> pending() const { return stream_.pending(); }
    [[nodiscard]] std::size_t pending_count() const noexcept { return stream_.pending_count(); }
    /// Server events applied: the position the next one will have.
    [[nodiscard]] std::size_t confirmed_size() const noexcept { return stream_.confirmed_size(); }
    [[nodiscard]] bool linked() const noexcept { return linked_; }
    /// Linked, and the history since the link has arrived (`stream/history` mode).
    [[nodiscard]] bool synced() const noexcept { return linked_ && synced_; }
    /// The username this client is linked as (the last one, when unlinked).
    [[nodiscard]] const std::string& user() const noexcept { return stream_.user(); }
    [[nodiscard]] const std::string& domain() const noexcept { return domain_; }
    [[nodiscard]] const OptimisticStream<State>& stream() const noexcept { return stream_; }
    [[nodiscard]] const StreamClientStatistics& statistics() const noexcept { return statistics_; }

    /// Drops expired pending events now (also done on every touch and on the transport's ticks).
    std::size_t flush_expired() { return stream_.flush_expired(); }

    /// `f(const State&)` after the optimistic state may have changed.
    template <class F>
    Subscription on_change(F&& f) {
        return stream_.on_change(std::forward<F>(f));
    }
    /// `f(const State&)` after the confirmed state changed.
    template <class F>
    Subscription on_confirmed_change(F&& f) {
        return stream_.on_confirmed_change(std::forward<F>(f));
    }
    /// `f(std::uint64_t id, const nlohmann::json& event, std::string_view reason)` for every own event
    /// dropped unconfirmed: invalidated by the server, expired, or reset by a link or unlink.
    template <class F>
    Subscription on_invalidated(F&& f) {
        return stream_.on_invalidated(std::forward<F>(f));
    }

    /// The transport's callbacks; public so that a caller that drives a client by hand may call them.
    void linked(std::string_view user) {
        linked_ = true;
        synced_ = false;
        stream_.reset();
        stream_.set_user(std::string{user});
    }
    void unlinked() {
        linked_ = false;
        synced_ = false;
        stream_.reset();
    }
    void receive(std::string_view text) {
        if (text.size() > options_.max_message_bytes || !detail::scan_value(text).empty()) {
            ++statistics_.ignored;
            return;
        }
        const auto message = nlohmann::json::parse(text, nullptr, false);
        if (message.is_discarded() || !message.is_object()) {
            ++statistics_.ignored;
            return;
        }
        const auto type = message.find("type");
        if (type == message.end() || !type->is_string()) {
            ++statistics_.ignored;
            return;
        }
        const auto& type_name = type->get_ref<const std::string&>();
        if (!std::string_view{type_name}.starts_with(stream_message::prefix)) return;  // another protocol's
        const auto payload = message.find("payload");
        if (payload == message.end() || !payload->is_object()) {
            ++statistics_.ignored;
            return;
        }
        const auto domain = payload->find("domain");
        if (domain == payload->end() || !domain->is_string()) {
            ++statistics_.ignored;
            return;
        }
        if (domain->get_ref<const std::string&>() != domain_) return;  // another domain's
        if (type_name == stream_message::append) {
            receive_append(*payload);
        } else if (type_name == stream_message::history) {
            receive_history(*payload);
        } else if (type_name == stream_message::invalidate) {
            receive_invalidate(*payload);
        } else {
            ++statistics_.ignored;
        }
    }

  private:
    template <class Transport>
    static ClockRef default_clock(Transport& transport) {
        if constexpr (requires { ClockRef{transport.clock()}; }) {
            return ClockRef{transport.clock()};
        } else {
            return ClockRef{};
        }
    }

    static std::optional<std::uint64_t> unsigned_member(const nlohmann::json& object, const char* key) {
        const auto it = object.find(key);
        if (it == object.end() || !it->is_number_unsigned()) return std::nullopt;
        return it->template get<std::uint64_t>();
    }

    OptimisticDispatch not_linked(nlohmann::json event) {
        return {DispatchResult{Outcome::failed, "not linked"}, std::nullopt, std::move(event)};
    }

    OptimisticDispatch send_if_accepted(OptimisticDispatch sent) {
        if (sent) {
            ++statistics_.sent;
            send_(detail::client_append_message(domain_, stream_.user(), detail::event_text(sent.event),
                                                *sent.id));
        }
        return sent;
    }

    // Applies one server event at `position` unless it is a duplicate or lies past a gap.
    void apply(std::string_view dispatcher, const nlohmann::json& event, std::uint64_t position,
               std::optional<std::uint64_t> id) {
        const std::size_t expected = stream_.confirmed_size();
        if (position < expected) {
            ++statistics_.duplicates;
            return;
        }
        if (position > expected) {
            ++statistics_.out_of_order;
            return;
        }
        ++statistics_.events;
        if (!stream_.receive(dispatcher, event, expected, id)) ++statistics_.divergent;
    }

    void receive_append(const nlohmann::json& payload) {
        const auto dispatcher = payload.find("dispatcher");
        const auto event = payload.find("event");
        const auto position = unsigned_member(payload, "position");
        if (dispatcher == payload.end() || !dispatcher->is_string() || event == payload.end() || !position) {
            ++statistics_.ignored;
            return;
        }
        apply(dispatcher->get_ref<const std::string&>(), *event, *position, unsigned_member(payload, "id"));
    }

    void receive_history(const nlohmann::json& payload) {
        const auto first = unsigned_member(payload, "position");
        const auto events = payload.find("events");
        if (!first || events == payload.end() || !events->is_array()) {
            ++statistics_.ignored;
            return;
        }
        ++statistics_.histories;
        std::uint64_t position = *first;
        for (const auto& entry : *events) {
            const auto dispatcher = entry.is_object() ? entry.find("dispatcher") : entry.end();
            const auto event = entry.is_object() ? entry.find("event") : entry.end();
            if (!entry.is_object() || dispatcher == entry.end() || !dispatcher->is_string() ||
                event == entry.end()) {
                ++statistics_.ignored;
                return;  // the rest would lie past a gap
            }
            apply(dispatcher->get_ref<const std::string&>(), *event, position++, std::nullopt);
        }
        synced_ = true;
    }

    void receive_invalidate(const nlohmann::json& payload) {
        const auto id = unsigned_member(payload, "id");
        if (!id) {
            ++statistics_.ignored;  // ours always carry an id; nothing to match an answer without one
            return;
        }
        const auto reason = payload.find("reason");
        const std::string_view text = reason != payload.end() && reason->is_string()
                                          ? std::string_view{reason->get_ref<const std::string&>()}
                                          : std::string_view{"invalidated by the server"};
        if (stream_.invalidate(*id, text)) ++statistics_.invalidated;
    }

    std::string domain_;
    StreamClientOptions options_;
    OptimisticStream<State> stream_;
    std::function<void(std::string)> send_;
    bool linked_ = false;
    bool synced_ = false;
    StreamClientStatistics statistics_;
    Subscription subscriptions_[4];
};

template <class Transport, class State>
StreamClient(Transport&, std::string, const StreamModel<State>&, StreamClientOptions = {})
    -> StreamClient<State>;
template <class Transport, class State>
StreamClient(Transport&, std::string, const StreamModel<State>&, StreamClientOptions, ClockRef)
    -> StreamClient<State>;

}  // namespace krmx

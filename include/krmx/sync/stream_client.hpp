#pragma once
// StreamClient<State>: the client end of one domain's stream (docs/protocol.md, section 2). Krmx State's
// client `registerStream(client, 'my-claimable-counter', model, { optimisticSeconds: 10 })`:
//
//   krmx::StreamClient counter{transport, "my-claimable-counter", counter::model(), {.optimistic_seconds = 10}};
//   counter.dispatch(counter::increment(3));   // applied at once, sent, later confirmed or invalidated
//   counter.state();                           // optimistic; confirmed_state() and pending() too
//
// It owns an OptimisticStream: own events are applied at once and sent as `stream/append` with an id; the
// server's `stream/append` confirms them (or is someone else's event), `stream/invalidate` drops them, and
// they expire after `optimistic_seconds` (on every touch, and on the transport's ticks when it has them).
// On its own link and unlink the stream resets; the history the server sends after a link rebuilds it.
// Messages it cannot use are counted and ignored; they never change the state.
//
// Falling out of sync is said, and mended: a gap in positions, a position repeated with another event, a
// history that does not start where it should, or a server event this client's model refuses moves
// sync_status() to `resyncing` (on_sync says why) and sends `stream/resync`; the server answers with the
// history from where the client stands, or from 0 after a reset. When the model refuses the server's
// stream again after a full rebuild, the client is `diverged` (said once) and stops applying events: its
// model differs from the server's and only a new version of the client can follow.
//
// In a domain with an audience (StreamDomain::admit) a client that is no member hears nothing and stays
// `syncing` until it is admitted, which sends it the history. `stream/dismissed` (it left the audience)
// resets the stream, pending events included, and moves it back to `syncing` (on_sync: "dismissed").
//
// With `request_history`, the client keeps its confirmed log across an unlink and, on the next link as the
// same user, asks only for what follows it (the server's `history_on_link` may then be off).
//
// Snapshots: a client that joins, or resyncs, far behind may be sent `stream/snapshot` (the state at
// position p, its JSON text in parts) and then the history from p, instead of every event since 0. When its
// model takes snapshots (StreamModel::snapshots) of the same revision, the client loads the state (a text
// that does not parse or a from_json that throws is caught), makes it the confirmed state at p, keeps its
// pending events on top, and reads the history from exactly p (there is no overlap event to check); roll
// backs then start from that state. Otherwise (no snapshots, another revision, a bad text) it asks for the
// events instead (`stream/resync` with `"snapshot":false`) and drops the history that followed the
// snapshot. Parts out of order, a part count that changes, or more than 64 messages' worth of text make a
// broken snapshot: counted, and the events asked for the same way.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "krmx/core/clock.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/stream/optimistic_stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/detail/client_message.hpp"
#include "krmx/sync/stream_messages.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx {

struct StreamClientOptions {
    /// How long an own event waits for the server's answer before it is dropped from the optimistic state.
    double optimistic_seconds = 10.0;
    /// Messages longer than this are ignored unread. At least the server's DomainHostOptions::
    /// max_message_bytes (1 MiB by default; histories come in pages of that size).
    std::size_t max_message_bytes = std::size_t{64} << 20;
    /// Ask for the history after every link (`stream/resync`) instead of waiting for it, and keep the
    /// confirmed log across an unlink so that a relink asks only for what was missed.
    bool request_history = false;
};

/// Where a client stands with the server's stream.
enum class SyncStatus : std::uint8_t {
    unlinked,   ///< not linked
    syncing,    ///< linked, the history has not arrived yet
    synced,     ///< linked and following the stream
    resyncing,  ///< fell out of sync (on_sync said why) and asked for the history again
    diverged,   ///< this client's model refuses the server's stream even after a full rebuild
};

[[nodiscard]] constexpr std::string_view to_string(SyncStatus status) noexcept {
    switch (status) {
        case SyncStatus::unlinked:
            return "unlinked";
        case SyncStatus::syncing:
            return "syncing";
        case SyncStatus::synced:
            return "synced";
        case SyncStatus::resyncing:
            return "resyncing";
        case SyncStatus::diverged:
            return "diverged";
    }
    return "unknown";
}

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
    std::uint64_t resyncs = 0;       ///< `stream/resync` requests sent after falling out of sync
    std::uint64_t dismissed = 0;     ///< `stream/dismissed`: the server took this user out of the audience
    std::uint64_t snapshots = 0;     ///< `stream/snapshot` loaded: the confirmed state restored at its position
    /// Whole snapshots this client could not use (its model takes none, or another revision; a text that does
    /// not parse; a from_json that throws): it asked for the events instead.
    std::uint64_t snapshots_refused = 0;
    /// Snapshots given up on before they were whole (parts out of order, a part count that changes, an
    /// unreadable part, too much text): it asked for the events instead.
    std::uint64_t snapshots_broken = 0;
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
    /// Linked, and following the server's stream (the history since the link has arrived).
    [[nodiscard]] bool synced() const noexcept { return status_ == SyncStatus::synced; }
    [[nodiscard]] SyncStatus sync_status() const noexcept { return status_; }
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

    /// `f(krmx::SyncStatus status, std::string_view reason)` whenever sync_status() changes; the reason
    /// says why a client fell out of sync (empty otherwise).
    template <class F>
    Subscription on_sync(F&& f) {
        return on_sync_.connect(std::forward<F>(f));
    }

    /// The transport's callbacks; public so that a caller that drives a client by hand may call them.
    void linked(std::string_view user) {
        linked_ = true;
        tried_full_resync_ = false;
        forget_snapshot();
        const bool resume = options_.request_history && user == stream_.user() && stream_.confirmed_size() > 0;
        if (resume) {
            stream_.flush();  // pending events were answered, or not, while unlinked: the server decided
        } else {
            reset();
            stream_.set_user(std::string{user});
        }
        set_status(SyncStatus::syncing, {});
        if (options_.request_history) request_history(stream_.confirmed_size());
    }
    void unlinked() {
        linked_ = false;
        forget_snapshot();
        if (options_.request_history) {
            stream_.flush();
        } else {
            reset();
        }
        set_status(SyncStatus::unlinked, {});
    }
    void receive(std::string_view text) {
        const auto read = detail::read_client_message(text, options_.max_message_bytes, stream_message::prefix, domain_);
        if (read.kind != detail::ClientMessage::Kind::ours) {
            if (read.kind == detail::ClientMessage::Kind::unusable) ++statistics_.ignored;
            return;  // another protocol's or another domain's
        }
        const auto type_name = read.type();
        const auto* payload = &read.payload();
        if (type_name == stream_message::append) {
            receive_append(*payload);
        } else if (type_name == stream_message::history) {
            receive_history(*payload);
        } else if (type_name == stream_message::invalidate) {
            receive_invalidate(*payload);
        } else if (type_name == stream_message::snapshot) {
            receive_snapshot(*payload);
        } else if (type_name == stream_message::dismissed) {
            ++statistics_.dismissed;
            forget_snapshot();
            reset();
            awaiting_history_ = false;
            if (linked_) set_status(SyncStatus::syncing, "dismissed");
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

    void set_status(SyncStatus status, std::string_view reason) {
        if (status == status_) return;
        status_ = status;
        on_sync_.emit(status, reason);
    }

    void reset() {
        stream_.reset();
        last_dispatcher_.clear();
        last_event_ = nullptr;
    }

    void request_history(std::size_t from, bool no_snapshot = false) {
        send_(detail::resync_message(domain_, from, no_snapshot || !reads_snapshots()));
        awaiting_history_ = true;
    }

    // Whether a snapshot from this server can be of use: the model takes them, and none was of another
    // revision (then asking for one again would only cost a round trip each time).
    [[nodiscard]] bool reads_snapshots() const noexcept {
        return stream_.model().snapshots.has_value() && !snapshot_revision_refused_;
    }

    // Out of sync: ask for the history from where this client stands, or from 0 after a reset when what
    // it holds cannot be trusted.
    void resync(std::string_view reason, bool from_scratch) {
        if (status_ == SyncStatus::diverged || !linked_) return;
        ++statistics_.resyncs;
        if (from_scratch) {
            tried_full_resync_ = true;
            reset();
        }
        set_status(SyncStatus::resyncing, reason);
        request_history(stream_.confirmed_size());
    }

    bool following() const noexcept { return linked_ && status_ != SyncStatus::diverged; }

    // Applies one server event at the position this client expects next; false when the model refused it
    // (the client is then resyncing or diverged).
    bool apply(std::string_view dispatcher, const nlohmann::json& event, std::optional<std::uint64_t> id) {
        const std::size_t position = stream_.confirmed_size();
        ++statistics_.events;
        if (auto result = stream_.receive(dispatcher, event, position, id); !result) {
            ++statistics_.divergent;
            const std::string reason = "event " + std::to_string(position) + ": " + std::string{result.reason()};
            if (tried_full_resync_) {
                set_status(SyncStatus::diverged, reason);
            } else {
                resync(reason, true);
            }
            return false;
        }
        last_dispatcher_ = dispatcher;
        last_event_ = event;
        return true;
    }

    void receive_append(const nlohmann::json& payload) {
        const auto dispatcher = payload.find("dispatcher");
        const auto event = payload.find("event");
        const auto position = unsigned_member(payload, "position");
        if (dispatcher == payload.end() || !dispatcher->is_string() || event == payload.end() || !position) {
            ++statistics_.ignored;
            return;
        }
        if (!following()) return;
        const std::size_t expected = stream_.confirmed_size();
        if (*position == expected) {
            (void)apply(dispatcher->get_ref<const std::string&>(), *event, unsigned_member(payload, "id"));
        } else if (*position > expected) {
            ++statistics_.out_of_order;
            if (status_ == SyncStatus::synced) {
                resync("gap: expected position " + std::to_string(expected) + ", got " + std::to_string(*position),
                       false);
            }
        } else {
            ++statistics_.duplicates;
            if (status_ == SyncStatus::synced) {
                resync("position " + std::to_string(*position) + " repeated", true);
            }
        }
    }

    void receive_history(const nlohmann::json& payload) {
        const auto first = unsigned_member(payload, "position");
        const auto events = payload.find("events");
        const auto more = payload.find("more");
        if (!first || events == payload.end() || !events->is_array()) {
            ++statistics_.ignored;
            return;
        }
        ++statistics_.histories;
        if (!following()) return;
        const bool last_page = more == payload.end() || *more != true;
        if (skip_history_at_) {
            // The history that followed a snapshot this client did not use: the answer to its resync follows.
            if (*first == *skip_history_at_) {
                *skip_history_at_ += events->size();
                if (last_page) skip_history_at_.reset();
                return;
            }
            skip_history_at_.reset();
        }
        if (const auto at = std::exchange(snapshot_at_, std::nullopt); at && *first != *at) {
            // The history after a snapshot at p starts at p: there is no event before p to check here.
            resync("history starts at " + std::to_string(*first) + ", expected " + std::to_string(*at) +
                       " after the snapshot",
                   true);
            return;
        }
        const std::size_t expected = stream_.confirmed_size();
        if (*first > expected) {
            ++statistics_.out_of_order;
            resync("history starts at " + std::to_string(*first) + ", expected " + std::to_string(expected), false);
            return;
        }
        std::uint64_t position = *first;
        for (const auto& entry : *events) {
            const auto dispatcher = entry.is_object() ? entry.find("dispatcher") : entry.end();
            const auto event = entry.is_object() ? entry.find("event") : entry.end();
            if (!entry.is_object() || dispatcher == entry.end() || !dispatcher->is_string() ||
                event == entry.end()) {
                ++statistics_.ignored;
                resync("unreadable history entry at " + std::to_string(position), false);
                return;
            }
            const auto here = position++;
            if (here < stream_.confirmed_size()) {
                // An event this client has: the last one must be the same, or it followed another stream.
                if (here + 1 == stream_.confirmed_size() &&
                    (dispatcher->get_ref<const std::string&>() != last_dispatcher_ || *event != last_event_)) {
                    resync("event " + std::to_string(here) + " differs from the server's", true);
                    return;
                }
                ++statistics_.duplicates;
                continue;
            }
            if (!apply(dispatcher->get_ref<const std::string&>(), *event, std::nullopt)) return;
        }
        if (!last_page) return;
        awaiting_history_ = false;
        if (position < stream_.confirmed_size()) {
            // The server's stream ends before what this client holds: it is another stream.
            resync("the server's stream ends at " + std::to_string(position), true);
            return;
        }
        if (status_ == SyncStatus::syncing || status_ == SyncStatus::resyncing) set_status(SyncStatus::synced, {});
    }

    // One `stream/snapshot` part. Parts come in order (0 to parts - 1, nothing between them); the last one
    // completes the text.
    void receive_snapshot(const nlohmann::json& payload) {
        const auto position = unsigned_member(payload, "position");
        const auto revision = unsigned_member(payload, "revision");
        const auto part = unsigned_member(payload, "part");
        const auto parts = unsigned_member(payload, "parts");
        const auto text = payload.find("text");
        if (!position || !revision || *revision > std::numeric_limits<std::uint32_t>::max() || !part || !parts ||
            *part >= *parts || text == payload.end() || !text->is_string()) {
            ++statistics_.ignored;
            // A part that cannot be read loses its snapshot: asking again beats waiting for ever.
            if (following() && (intake_ || (part && *part == 0))) {
                snapshot_broken(position ? *position : intake_ ? intake_->position : 0, "an unreadable part");
            }
            return;
        }
        if (!following()) return;
        const auto& slice = text->get_ref<const std::string&>();
        if (*part == 0) {
            if (intake_) {
                snapshot_broken(*position, "a new snapshot before part " + std::to_string(intake_->next) + " of " +
                                               std::to_string(intake_->parts));
                return;
            }
            dropping_parts_ = false;
            intake_.emplace(SnapshotIntake{static_cast<std::size_t>(*position),
                                           static_cast<std::uint32_t>(*revision), *parts, 0, {}});
        } else if (!intake_) {
            if (!dropping_parts_) snapshot_broken(*position, "part " + std::to_string(*part) + " without part 0");
            return;  // else: the rest of a snapshot given up on
        } else if (*part != intake_->next || *parts != intake_->parts || *position != intake_->position ||
                   *revision != intake_->revision) {
            snapshot_broken(intake_->position, "part " + std::to_string(*part) + " of " + std::to_string(*parts) +
                                                   " where part " + std::to_string(intake_->next) + " of " +
                                                   std::to_string(intake_->parts) + " was due");
            return;
        }
        if (slice.size() > max_snapshot_bytes() - intake_->text.size()) {
            snapshot_broken(intake_->position, "more than " + std::to_string(max_snapshot_bytes()) + " bytes");
            return;
        }
        intake_->text += slice;
        if (++intake_->next == intake_->parts) complete_snapshot();
    }

    // A snapshot's text may take up to 64 messages.
    [[nodiscard]] std::size_t max_snapshot_bytes() const noexcept {
        constexpr std::size_t most = std::numeric_limits<std::size_t>::max();
        return options_.max_message_bytes > most / 64 ? most : options_.max_message_bytes * 64;
    }

    void complete_snapshot() {
        SnapshotIntake snapshot = std::move(*intake_);
        intake_.reset();
        const std::string at = "snapshot at " + std::to_string(snapshot.position) + ": ";
        const auto& codec = stream_.model().snapshots;
        if (!codec) {
            snapshot_revision_refused_ = true;
            snapshot_refused(snapshot.position, at + "this client's model takes no snapshots");
            return;
        }
        if (codec->revision != snapshot.revision) {
            snapshot_revision_refused_ = true;
            snapshot_refused(snapshot.position, at + "revision " + std::to_string(snapshot.revision) +
                                                    ", this client reads revision " + std::to_string(codec->revision));
            return;
        }
        std::optional<State> state;
        std::string why;
        try {
            const auto json = nlohmann::json::parse(snapshot.text, nullptr, false);
            if (json.is_discarded()) {
                why = "the text does not parse";
            } else {
                state.emplace(codec->load(json));  // the user's from_json: anything may come out of it
            }
        } catch (const std::exception& e) {
            why = std::string{"the state does not load ("} + e.what() + ")";
        } catch (...) {
            why = "the state does not load";
        }
        if (!state) {
            snapshot_refused(snapshot.position, at + why);
            return;
        }
        ++statistics_.snapshots;
        stream_.restore_confirmed_at(std::move(*state), snapshot.position);
        last_dispatcher_.clear();  // nothing before the snapshot to check a history's overlap against
        last_event_ = nullptr;
        snapshot_at_ = snapshot.position;
        awaiting_history_ = true;
    }

    // A whole snapshot this client cannot use: it asks for the events from where it stands (its state is as
    // it was) and drops the history that follows the snapshot.
    void snapshot_refused(std::size_t position, const std::string& reason) {
        ++statistics_.snapshots_refused;
        abandon_snapshot(position, reason);
    }

    void snapshot_broken(std::size_t position, const std::string& reason) {
        ++statistics_.snapshots_broken;
        intake_.reset();
        dropping_parts_ = true;
        abandon_snapshot(position, "broken snapshot at " + std::to_string(position) + ": " + reason);
    }

    void abandon_snapshot(std::size_t position, std::string_view reason) {
        skip_history_at_ = position;
        snapshot_at_.reset();
        if (!following()) return;
        ++statistics_.resyncs;
        set_status(SyncStatus::resyncing, reason);
        request_history(stream_.confirmed_size(), true);
    }

    void forget_snapshot() {
        intake_.reset();
        dropping_parts_ = false;
        skip_history_at_.reset();
        snapshot_at_.reset();
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
    SyncStatus status_ = SyncStatus::unlinked;
    bool tried_full_resync_ = false;  // since the link: a second refusal then means diverged
    bool awaiting_history_ = false;
    std::string last_dispatcher_;     // the last confirmed event, to check a history's overlap
    nlohmann::json last_event_;
    // A snapshot arriving in parts.
    struct SnapshotIntake {
        std::size_t position;
        std::uint32_t revision;
        std::uint64_t parts;
        std::uint64_t next;  // the part due
        std::string text;
    };
    std::optional<SnapshotIntake> intake_;
    bool dropping_parts_ = false;                  // the rest of a broken snapshot's parts: dropped
    std::optional<std::size_t> skip_history_at_;   // the history after a snapshot not used: dropped
    std::optional<std::size_t> snapshot_at_;       // a snapshot was restored here: the history starts here
    bool snapshot_revision_refused_ = false;       // this server's snapshots are of no use: ask for events
    detail::Signal<SyncStatus, std::string_view> on_sync_;
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

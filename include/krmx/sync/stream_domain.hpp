#pragma once
// krmx::StreamDomain<State>: the server's authoritative end of one domain whose model is a StreamModel:
// the Krmx State `registerStream(server, 'my-claimable-counter', model)`.
//
//   krmx::net::WebSocketServer server{{.port = 8082}};
//   krmx::StreamDomain counter{server, "my-claimable-counter", counter::model(),
//                              {.durability = krmx::durable(store)}};   // optional: sync/durable.hpp
//
// What it does (docs/protocol.md, section 2, has the messages; docs/architecture.md the path of one):
// - On link: the user gets the history: `stream/history` pages that each fit the host's message limit
//   when its client reads them (it said so when it linked: krmx's C++ clients do), otherwise one
//   `stream/append` per event, which is what the JavaScript Krmx clients read. `history_on_link` off: only
//   to clients that ask (`stream/resync`).
// - On `stream/resync` {position: n} from user U: U gets the history from n - 1 (one event it has, so that
//   it can check it follows the same stream) in `stream/history` pages; from 0 when n is past the end (U
//   holds events this stream does not: it must rebuild).
// - Snapshots (durable domains whose model has them on, StreamModel::snapshots): a client that reads them
//   (it named "stream/snapshot" when it linked: krmx's C++ clients do) and is far behind, on link or on a
//   resync without `"snapshot":false`, gets the newest state the domain captured as `stream/snapshot` parts
//   and then the history from its position, instead of every event before it.
// - Memory (durable domains, MemoryPolicy): only a tail of the stream is held; older events are read back
//   from the store in pages, off the event loop, for whoever needs them, and that user hears no live event
//   until it caught up. max_history_bytes holds for in-memory domains only.
// - On `stream/append` from user U: U is the dispatcher, whatever the message says. Accepted: stored (when
//   durable), then `stream/append` with position, dispatcher and the echoed id to every linked user.
//   Refused: `stream/invalidate` with the reason to U only.
// - The event is re-sent as the exact text it arrived as (key order, number spelling), in the broadcast and
//   in every later history: JavaScript clients match their optimistic events on the serialized text.
// - Server code dispatches its own events with any dispatcher name (krmx::server_dispatcher, "<server>").
//   That name and every name server code has dispatched with are reserved: a user who links under one of
//   them cannot append, so nobody can dispatch as the server.
// - Durable (`durability`): the domain restores its stream from the store when it is made, before anyone
//   links. An accepted event is applied at once (later events are validated against it) but confirmed to
//   nobody, not even its sender, and left out of histories, until the commit that holds it succeeded (see
//   sync/detail/commit_pipeline.hpp). A failed commit takes back every event of its batch, each sender gets
//   `stream/invalidate` "event not stored: <why>", and the events that waited behind the batch are
//   dispatched again (confirmed later, or refused with the model's reason if they only held on top of the
//   lost ones).
// - Limits: an event may be at most `max_event_bytes` long and nest at most json_max_event_depth levels;
//   an in-memory domain's history at most `max_history_bytes` (event texts and dispatchers), then the
//   stream is full (a durable one lets old events go instead). Every accepted event fits one message of the host's `max_message_bytes`, in a broadcast
//   and in a history page.
// - Audience (`audience = Audience::members`; the default, `everyone`, is every linked user): only members
//   receive the domain's appends, histories and invalidates, and only members may append (anyone else gets
//   `stream/invalidate` "not a member of domain ..."; a resync from them gets nothing). Server code
//   admits and dismisses users at run time: admit() sends a linked user the history at once, as on link;
//   dismiss() sends it `stream/dismissed` (a krmx::StreamClient then resets; @krmx/state's client ignores it).
//   Membership is server state, not stream state: a durable domain that derives it from its events (a
//   `joined` event) admits again after a restart from its restored state.
// - Monitoring (sync/domain_report.hpp): its report (statistics, sizes, commits) through the host; a durable
//   domain whose last commit failed reports itself not ready until a commit succeeds again. With an observer
//   on the host it times each user's append to its confirmation and each commit; without one it reads no
//   clock for that.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/shared_text.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/audience.hpp"
#include "krmx/sync/detail/domain_core.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/stream_messages.hpp"

namespace krmx {

struct StreamDomainOptions {
    /// Send the history to every user that links (pages or appends, as its client reads them). Off: only
    /// to clients that ask (`stream/resync`, which krmx::StreamClient does with `request_history`).
    bool history_on_link = true;
    /// The longest event text accepted, in bytes. Must leave room for the envelope within the host's
    /// max_message_bytes (checked when the domain is made).
    std::size_t max_event_bytes = std::size_t{256} << 10;
    /// In-memory domains: the most the history may hold (event texts and dispatchers), in bytes; then the
    /// stream is full and refuses further events. A durable domain keeps a tail instead (DurableOptions::
    /// memory) and never fills up.
    std::size_t max_history_bytes = std::size_t{256} << 20;
    /// Where accepted events are stored before anyone hears of them: `krmx::durable(store)`
    /// (sync/durable.hpp). Empty: the stream lives in memory only.
    Durability durability = {};
    /// Who receives the domain's messages and may append: everyone linked, or only admitted members.
    Audience audience = Audience::everyone;
};

template <class State>
class StreamDomain final : private detail::DomainCore<State> {
    using Core = detail::DomainCore<State>;
    using Waiting = typename Core::Waiting;

  public:
    using state_type = State;

    /// Attaches to `host`; a durable domain restores its stream from its store first (throws
    /// krmx::ModelError when the model refuses a stored event, StoreError when the store fails).
    StreamDomain(DomainHost& host, std::string name, const StreamModel<State>& model,
                 StreamDomainOptions options = {})
        : Core(host, std::move(name), model,
               {"krmx::StreamDomain", options.max_event_bytes, options.max_history_bytes, options.durability,
                options.audience}),
          options_(std::move(options)) {}
    /// The same on the host of `server` (krmx::net::WebSocketServer, krmx::testing::Hub).
    template <HasDomainHost Server>
    StreamDomain(Server& server, std::string name, const StreamModel<State>& model, StreamDomainOptions options = {})
        : StreamDomain(server.host(), std::move(name), model, std::move(options)) {}

    // Server code's own events (broadcast when accepted, and stored), as the text it is re-sent as:
    // dispatch(dispatcher, typed event | json), dispatch_text(dispatcher, text). See DomainCore.
    using Core::dispatch;
    using Core::dispatch_text;
    // The audience: admit(user) (a linked user gets the history at once, as on link, unless history_on_link
    // is off), dismiss(user) (a linked user gets `stream/dismissed`), hears(user), members().
    using Core::admit;
    using Core::dismiss;
    using Core::hears;
    using Core::held_from;
    using Core::members;
    // The stream: state(), stream(), size(), confirmed_size(), uncommitted(), committing(), durable(),
    // event_text(position), name(), statistics().
    using Core::committing;
    using Core::confirmed_size;
    using Core::durable;
    using Core::event_text;
    using Core::name;
    using Core::size;
    using Core::snapshot_statistics;
    using Core::state;
    using Core::state_at;
    using Core::statistics;
    using Core::stream;
    using Core::uncommitted;

    /// Sends the stream from `from` to a linked user as `stream/history` pages. Only confirmed events go
    /// out: none that waits for its commit. A durable domain reads events it no longer holds from its store
    /// first, off this thread (the user hears no live events until it caught up).
    void send_history(std::string_view user, std::size_t from = 0) { this->send_events(user, from, Core::EventsForm::pages); }

    [[nodiscard]] const StreamDomainOptions& options() const noexcept { return options_; }

  private:
    void start_hearing(std::string_view user, const LinkedUser& link) override {
        if (options_.history_on_link) send_history_as_on_link(user, link);
    }
    void stop_hearing(std::string_view user, bool dismissed) override {
        if (dismissed) this->host().send(user, detail::dismissed_message(this->name()));
    }

    // The history as the user's client reads it: the newest snapshot and the events after it, pages, or one
    // `stream/append` per event.
    void send_history_as_on_link(std::string_view user, const LinkedUser& link) {
        if (link.reads_history_pages && link.reads_snapshots && send_snapshot(user, 0)) return;
        this->send_events(user, 0, link.reads_history_pages ? Core::EventsForm::pages : Core::EventsForm::appends);
    }

    // The newest snapshot, in `stream/snapshot` parts, and the history after it, when that says more than the
    // events from `from` would (each event takes some 32 bytes at least); false (nothing sent) otherwise.
    bool send_snapshot(std::string_view user, std::size_t from) {
        const auto& latest = this->latest_snapshot();
        const auto revision = this->snapshot_revision();
        if (!latest || !revision || latest->position <= from ||
            (latest->position - from) * 32 <= latest->text.size()) {
            return false;
        }
        ++this->counters().snapshots_sent;
        detail::snapshot_parts(this->name(), latest->position, *revision, latest->text,
                               this->host().options().max_message_bytes,
                               [&](std::string part) { this->host().send(user, std::move(part)); });
        this->send_events(user, latest->position, Core::EventsForm::pages);
        return true;
    }

    void receive(std::string_view user, const Message& message) override {
        if (message.type() == stream_message::append) {
            append(user, message);
        } else if (message.type() == stream_message::resync) {
            resync(user, message);
        } else {
            ++this->counters().malformed;
            ++this->counters().dropped;
        }
    }

    // The path of a user's `stream/append`, from the message the session read to the broadcast.
    void append(std::string_view user, const Message& message) {
        // 1. The id names the sender's optimistic entry: one that cannot be echoed is no id at all.
        std::optional<std::uint64_t> id;
        if (const auto* id_member = message.field("id")) {
            id = detail::raw_unsigned(id_member->value);
            if (!id) {
                ++this->counters().malformed;
                ++this->counters().dropped;
                return;
            }
        }
        // 2. The sender is the dispatcher (the payload's `dispatcher` is ignored on purpose); then the
        //    checks every user's event passes, and the stream (DomainCore::accept_from_user).
        const auto* event = message.field("event");
        const auto result = this->accept_from_user(user, message, event, id, "stream/append without an event");
        if (!result) refuse(user, id, event ? event->value : std::string_view{}, result);
    }

    void resync(std::string_view user, const Message& message) {
        const auto* position_member = message.field("position");
        const auto position = position_member ? detail::raw_unsigned(position_member->value) : std::nullopt;
        if (!position) {
            ++this->counters().malformed;
            ++this->counters().dropped;
            return;
        }
        if (!hears(user)) {
            ++this->counters().not_member_resyncs;
            return;
        }
        ++this->counters().resyncs;
        // One event the client has goes along, so that it can check that it follows this very stream.
        const std::size_t end = this->confirmed_size();
        const std::size_t from = *position > end ? 0 : (*position > 0 ? *position - 1 : 0);
        // Far behind, a client that reads snapshots gets one, unless it said it cannot use it.
        const auto* snapshot_member = message.field("snapshot");
        const bool no_snapshot = snapshot_member && snapshot_member->value == "false";
        const auto* link = this->link_of(user);
        if (!no_snapshot && link && link->reads_history_pages && link->reads_snapshots && send_snapshot(user, from)) return;
        send_history(user, from);
    }

    // Accepted events go to every member (but those still catching up on old events): one text, shared.
    void confirmed(std::size_t first, std::span<const Waiting> batch) override {
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto [dispatcher, text] = this->entry()(first + i);
            auto message = detail::append_message(this->name(), dispatcher, text, first + i, batch[i].id);
            if (this->broadcast_reaches_hearers()) {
                this->host().broadcast(std::move(message));
            } else {
                const auto shared = share_text(std::move(message));
                this->for_each_live_hearer([&](std::string_view member) { this->host().send(member, shared); });
            }
        }
    }

    void refuse(std::string_view user, std::optional<std::uint64_t> id, std::string_view raw_event,
                const DispatchResult& result) override {
        ++this->counters().invalidates_sent;
        this->host().send(user, detail::invalidate_message(this->name(), id, raw_event, result.reason()));
    }

    StreamDomainOptions options_;
};

template <class State>
StreamDomain(DomainHost&, std::string, const StreamModel<State>&, StreamDomainOptions = {}) -> StreamDomain<State>;
template <HasDomainHost Server, class State>
StreamDomain(Server&, std::string, const StreamModel<State>&, StreamDomainOptions = {}) -> StreamDomain<State>;

}  // namespace krmx

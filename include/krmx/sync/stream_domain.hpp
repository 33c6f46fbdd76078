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
//   the history at most `max_history_bytes` in memory (event texts and dispatchers), then the stream is
//   full. Every accepted event fits one message of the host's `max_message_bytes`, in a broadcast
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
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_scan.hpp"
#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/detail/commit_pipeline.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/domain_report.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/stream_messages.hpp"

namespace krmx {

/// Who hears a domain: every linked user, or only the members server code admits (StreamDomain::admit).
enum class Audience { everyone, members };

struct StreamDomainOptions {
    /// Send the history to every user that links (pages or appends, as its client reads them). Off: only
    /// to clients that ask (`stream/resync`, which krmx::StreamClient does with `request_history`).
    bool history_on_link = true;
    /// The longest event text accepted, in bytes. Must leave room for the envelope within the host's
    /// max_message_bytes (checked when the domain is made).
    std::size_t max_event_bytes = std::size_t{256} << 10;
    /// The most the history may hold in memory (event texts and dispatchers), in bytes; then the stream
    /// is full and refuses further events.
    std::size_t max_history_bytes = std::size_t{256} << 20;
    /// Where accepted events are stored before anyone hears of them: `krmx::durable(store)`
    /// (sync/durable.hpp). Empty: the stream lives in memory only.
    Durability durability = {};
    /// Who receives the domain's messages and may append: everyone linked, or only admitted members.
    Audience audience = Audience::everyone;
};

/// Anything that owns a DomainHost for its transport (krmx::net::WebSocketServer, krmx::testing::Hub).
template <class T>
concept HasDomainHost = requires(T& t) {
    { t.host() } -> std::same_as<DomainHost&>;
};

template <class State>
class StreamDomain final : private detail::HostedDomain, private detail::CommitPipeline::Owner {
  public:
    using state_type = State;

    /// Attaches to `host`; a durable domain restores its stream from its store first (throws
    /// krmx::ModelError when the model refuses a stored event, StoreError when the store fails).
    StreamDomain(DomainHost& host, std::string name, const StreamModel<State>& model,
                 StreamDomainOptions options = {})
        : host_(host), name_(std::move(name)), options_(std::move(options)), stream_(model) {
        if (detail::event_message_bytes(name_, {}, options_.max_event_bytes) + 1024 >
            host_.options().max_message_bytes) {
            throw std::invalid_argument("krmx::StreamDomain " + detail::quoted(name_) + ": max_event_bytes (" +
                                        std::to_string(options_.max_event_bytes) +
                                        ") leaves no room for the envelope within the host's max_message_bytes (" +
                                        std::to_string(host_.options().max_message_bytes) + ")");
        }
        reserved_.emplace(server_dispatcher);
        if (options_.durability) {
            journal_ = options_.durability.open(name_, host_.loop());
            journal_->restore([this](RecordedEvent& record) { restore(record); });
            pipeline_.emplace(static_cast<detail::CommitPipeline::Owner&>(*this), events_.size());
        }
        host_.attach(name_, *this);
    }
    /// The same on the host of `server` (krmx::net::WebSocketServer, krmx::testing::Hub).
    template <HasDomainHost Server>
    StreamDomain(Server& server, std::string name, const StreamModel<State>& model, StreamDomainOptions options = {})
        : StreamDomain(server.host(), std::move(name), model, std::move(options)) {}
    StreamDomain(const StreamDomain&) = delete;
    StreamDomain& operator=(const StreamDomain&) = delete;
    ~StreamDomain() override { host_.detach(name_); }

    /// Server code's own event, e.g. `dispatch(krmx::server_dispatcher, round::end())`; broadcast when
    /// accepted (and stored). It takes the path of a user's event from its wire text, so server code is
    /// held to the same grammar and limits (a NaN in a double payload, written as null, is refused here
    /// rather than by every client). The dispatcher name becomes reserved.
    template <class P>
    DispatchResult dispatch(std::string_view dispatcher, const TypedEvent<P>& event) {
        return dispatch_text(dispatcher, detail::event_text(event.to_json()));
    }
    DispatchResult dispatch(std::string_view dispatcher, const nlohmann::json& event) {
        return dispatch_text(dispatcher, detail::event_text(event));
    }
    /// The same from JSON text, which is re-sent exactly as given. When durable, an accepted result means
    /// applied, not yet stored: the broadcast comes after the commit, and a failed commit takes the event
    /// back (counted in `not_stored`) or dispatches it again at another position.
    DispatchResult dispatch_text(std::string_view dispatcher, std::string_view event_text) {
        if (reserved_.find(dispatcher) == reserved_.end()) reserved_.emplace(dispatcher);
        return accept(dispatcher, event_text, {std::nullopt, false},
                      [&] { return stream_.dispatch_text(dispatcher, event_text); });
    }

    /// Lets `user` hear and append (Audience::members; with `everyone` it only records the name). A linked user
    /// gets the history at once (as on link, unless history_on_link is off); one that links later gets it then.
    /// True when it was no member before.
    bool admit(std::string_view user) {
        if (!members_.emplace(user).second) return false;
        if (options_.audience == Audience::everyone || !options_.history_on_link) return true;  // heard already
        if (const auto it = linked_.find(user); it != linked_.end()) send_history_as_on_link(it->first, it->second);
        return true;
    }
    /// Stops `user` hearing and appending; a linked user is told (`stream/dismissed`). Its events stay in the
    /// stream. True when it was a member.
    bool dismiss(std::string_view user) {
        const auto it = members_.find(user);
        if (it == members_.end()) return false;
        members_.erase(it);
        if (options_.audience == Audience::members && linked_.find(user) != linked_.end()) {
            host_.send(user, detail::dismissed_message(name_));
        }
        return true;
    }
    /// Whether `user` hears this domain: always with Audience::everyone, else when admitted.
    [[nodiscard]] bool hears(std::string_view user) const {
        return options_.audience == Audience::everyone || members_.find(user) != members_.end();
    }
    /// The admitted users, linked or not, in name order.
    [[nodiscard]] const std::set<std::string, std::less<>>& members() const noexcept { return members_; }

    /// Sends the stream from `from` to a linked user as `stream/history` pages. Only confirmed events go
    /// out: none that waits for its commit.
    void send_history(std::string_view user, std::size_t from = 0) {
        ++statistics_.histories_sent;
        detail::history_pages(name_, from, confirmed_size(), host_.options().max_message_bytes, entry(),
                              [&](std::string page) { host_.send(user, std::move(page)); });
    }

    /// The state after every accepted event, including those that wait for their commit.
    [[nodiscard]] const State& state() const noexcept { return stream_.state(); }
    [[nodiscard]] const Stream<State>& stream() const noexcept { return stream_; }
    /// Accepted events, including those that wait for their commit.
    [[nodiscard]] std::size_t size() const noexcept { return stream_.size(); }
    /// Events confirmed to users (broadcast, in histories): all but those that wait for their commit.
    [[nodiscard]] std::size_t confirmed_size() const noexcept {
        return pipeline_ ? pipeline_->committed() : events_.size();
    }
    /// Accepted events that wait for their commit, the batch in flight included.
    [[nodiscard]] std::size_t uncommitted() const noexcept { return pipeline_ ? pipeline_->uncommitted() : 0; }
    /// Whether a commit is in flight.
    [[nodiscard]] bool committing() const noexcept { return pipeline_ && pipeline_->committing(); }
    [[nodiscard]] bool durable() const noexcept { return journal_ != nullptr; }
    /// The event at `position` as the text it arrived as (and is re-sent as).
    [[nodiscard]] std::string_view event_text(std::size_t position) const { return events_.at(position); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const StreamDomainStatistics& statistics() const noexcept {
        if (pipeline_) {
            statistics_.commits = pipeline_->commits();
            statistics_.failed_commits = pipeline_->failed_commits();
        }
        return statistics_;
    }
    [[nodiscard]] const StreamDomainOptions& options() const noexcept { return options_; }

  private:
    // ---- from the host -------------------------------------------------------------------------------

    void user_linked(std::string_view user, const LinkedUser& link) override {
        // Only an audience needs to know who is linked (admit, dismiss, its broadcasts): a domain everyone
        // hears keeps nothing per user.
        if (options_.audience == Audience::members) linked_.insert_or_assign(std::string{user}, link);
        if (options_.history_on_link && hears(user)) send_history_as_on_link(user, link);
    }
    void user_unlinked(std::string_view user) override {
        if (const auto it = linked_.find(user); it != linked_.end()) linked_.erase(it);
    }

    // The history as the user's client reads it: pages, or one `stream/append` per event.
    void send_history_as_on_link(std::string_view user, const LinkedUser& link) {
        if (link.reads_history_pages) {
            send_history(user);
            return;
        }
        ++statistics_.histories_sent;
        for (std::size_t i = 0; i < confirmed_size(); ++i) {
            host_.send(user, detail::append_message(name_, stream_.log()[i].dispatcher(), events_[i], i, std::nullopt));
        }
    }

    void receive(std::string_view user, const Message& message) override {
        if (message.type() == stream_message::append) {
            append(user, message);
        } else if (message.type() == stream_message::resync) {
            resync(user, message);
        } else {
            ++statistics_.malformed;
            ++statistics_.dropped;
        }
    }

    // The path of a user's `stream/append`, from the message the session read to the broadcast.
    void append(std::string_view user, const Message& message) {
        // 1. The id names the sender's optimistic entry: one that cannot be echoed is no id at all.
        std::optional<std::uint64_t> id;
        if (const auto* id_member = message.field("id")) {
            id = detail::raw_unsigned(id_member->value);
            if (!id) {
                ++statistics_.malformed;
                ++statistics_.dropped;
                return;
            }
        }
        // 2. The sender is the dispatcher (the payload's `dispatcher` is ignored on purpose), and it may
        //    not be a name the server dispatches with.
        const auto* event = message.field("event");
        const std::string_view text = event ? event->value : std::string_view{};
        if (reserved_.find(user) != reserved_.end()) {
            ++statistics_.reserved_name;
            refuse(user, id, text,
                   DispatchResult{Outcome::rejected, Reason{"the name " + detail::quoted(user) + " is reserved for the server"}});
            return;
        }
        if (!hears(user)) {
            ++statistics_.not_member;
            refuse(user, id, text,
                   DispatchResult{Outcome::rejected, Reason{"not a member of domain " + detail::quoted(name_)}});
            return;
        }
        if (!event) {
            ++statistics_.malformed;
            refuse(user, id, {}, DispatchResult{Outcome::malformed, "stream/append without an event"});
            return;
        }
        // 3. Within the event's own depth limit (the session's leaves room for the envelopes).
        if (event->depth > detail::json_max_event_depth) {
            ++statistics_.too_large;
            refuse(user, id, text,
                   DispatchResult{Outcome::malformed, Reason{"event nested too deeply (" + std::to_string(event->depth) +
                                                             " levels; at most " +
                                                             std::to_string(detail::json_max_event_depth) + ")"}});
            return;
        }
        // 4. Decoded from the members the session scanned, applied, kept, then stored or broadcast.
        const auto* observer = host_.observer();
        const auto result = accept(user, text, {id, true, observer ? std::optional<TimePoint>{Clock::now()} : std::nullopt},
                                   [&] { return stream_.dispatch_scanned(user, text, message.members_of(*event)); });
        if (!result) refuse(user, id, text, result);
    }

    void resync(std::string_view user, const Message& message) {
        const auto* position_member = message.field("position");
        const auto position = position_member ? detail::raw_unsigned(position_member->value) : std::nullopt;
        if (!position) {
            ++statistics_.malformed;
            ++statistics_.dropped;
            return;
        }
        if (!hears(user)) {
            ++statistics_.not_member_resyncs;
            return;
        }
        ++statistics_.resyncs;
        // One event the client has goes along, so that it can check that it follows this very stream.
        const std::size_t end = confirmed_size();
        const std::size_t from = *position > end ? 0 : (*position > 0 ? *position - 1 : 0);
        send_history(user, from);
    }

    // ---- accepting an event ----------------------------------------------------------------------------

    // Checks the limits, dispatches through the stream, keeps the text, and then stores the event (durable:
    // the commit pipeline broadcasts it once stored) or broadcasts it at once.
    template <class Dispatch>
    DispatchResult accept(std::string_view dispatcher, std::string_view text, detail::CommitPipeline::Waiting waiting,
                          Dispatch&& dispatch) {
        if (auto refusal = over_limits(dispatcher, text)) {
            ++statistics_.too_large;
            return *refusal;
        }
        auto result = dispatch();
        if (!result) return count(std::move(result));
        const std::size_t position = *result.position();
        events_.emplace_back(text);
        history_bytes_ += text.size() + dispatcher.size();
        if (!pipeline_) {
            broadcast(position, waiting);
            return result;
        }
        // A commit may run, and fail, in the call (synchronous commits): then the event is taken back, and
        // its sender hears of that through this result, not from failed().
        accepting_ = position;
        pipeline_->add(waiting);
        accepting_.reset();
        if (events_.size() <= position) return DispatchResult{Outcome::failed, Reason{"event not stored: " + last_commit_error_}};
        return result;
    }

    void broadcast(std::size_t position, const detail::CommitPipeline::Waiting& waiting) {
        ++statistics_.accepted;
        auto message =
            detail::append_message(name_, stream_.log()[position].dispatcher(), events_[position], position, waiting.id);
        if (options_.audience == Audience::everyone) {
            host_.broadcast(std::move(message));
        } else {
            // A room is small beside the server: walk its members, not every linked user.
            for (const auto& member : members_) {
                if (linked_.find(member) != linked_.end()) host_.send(member, message);
            }
        }
        if (waiting.received) {
            if (auto* observer = host_.observer()) observer->append_confirmed(name_, Clock::now() - *waiting.received);
        }
    }

    void commit_ended(bool stored) {
        if (!commit_started_) return;
        const auto started = *std::exchange(commit_started_, std::nullopt);
        if (auto* observer = host_.observer()) observer->commit_ended(name_, Clock::now() - started, stored);
    }

    DomainReport report() const override {
        DomainReport r;
        r.name = name_;
        r.statistics = statistics();
        r.events = size();
        r.confirmed = confirmed_size();
        r.history_bytes = history_bytes_;
        r.durable = durable();
        r.uncommitted = uncommitted();
        r.committing = committing();
        if (last_commit_failed_) r.not_ready = "last commit failed: " + last_commit_error_;
        if (journal_) r.store = journal_->store_statistics();
        return r;
    }

    void refuse(std::string_view user, std::optional<std::uint64_t> id, std::string_view raw_event,
                const DispatchResult& result) {
        ++statistics_.invalidates_sent;
        host_.send(user, detail::invalidate_message(name_, id, raw_event, result.reason()));
    }

    std::optional<DispatchResult> over_limits(std::string_view dispatcher, std::string_view text) const {
        if (text.size() > options_.max_event_bytes ||
            detail::event_message_bytes(name_, dispatcher, text.size()) > host_.options().max_message_bytes) {
            return DispatchResult{Outcome::malformed,
                                  Reason{"event too large (" + std::to_string(text.size()) + " bytes; at most " +
                                         std::to_string(options_.max_event_bytes) + ")"}};
        }
        if (history_bytes_ + text.size() + dispatcher.size() > options_.max_history_bytes) {
            return DispatchResult{Outcome::rejected,
                                  Reason{"stream is full (" + std::to_string(history_bytes_) +
                                         " bytes of history; at most " +
                                         std::to_string(options_.max_history_bytes) + ")"}};
        }
        return std::nullopt;
    }

    DispatchResult count(DispatchResult result) {
        switch (result.outcome()) {
            case Outcome::accepted:
                break;
            case Outcome::unknown_type:
                ++statistics_.unknown_type;
                break;
            case Outcome::invalid_payload:
                ++statistics_.invalid_payload;
                break;
            case Outcome::malformed:
                ++statistics_.malformed;
                break;
            case Outcome::rejected:
                ++statistics_.rejected;
                break;
            case Outcome::failed:
                ++statistics_.failed;
                break;
        }
        return result;
    }

    // (dispatcher, text) of the event at a position, for history pages.
    auto entry() const {
        return [this](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{stream_.log()[i].dispatcher(), events_[i]};
        };
    }

    // ---- durability ------------------------------------------------------------------------------------

    // A stored event, loaded when the domain is made: applied and kept for the history, neither stored
    // again nor broadcast. The stored log is the truth: an event the model refuses stops the restore.
    void restore(RecordedEvent& record) {
        const std::size_t position = events_.size();
        const auto refused = [&](const std::string& why) {
            return ModelError("krmx::StreamDomain " + detail::quoted(name_) + ": stored event " +
                              std::to_string(position) + " (" + detail::quoted(record.type) + ") " + why);
        };
        const auto index = stream_.model().find_name(record.type);
        const std::uint32_t writes = index ? stream_.model().schemas[*index] : 1;
        const std::uint32_t stored = stored_schema_version(record.metadata);
        if (stored != writes) {
            throw refused("has schema version " + std::to_string(stored) + ", the model writes version " +
                          std::to_string(writes) + ": a domain re-sends stored events as they are and cannot upcast them");
        }
        auto result = stream_.dispatch(record.dispatcher, record.type, record.payload ? &*record.payload : nullptr);
        if (!result) throw refused("is refused by the model (" + std::string{result.reason()} + ")");
        const auto text = record.metadata.find("text");
        if (text != record.metadata.end() && text->is_string()) {
            events_.push_back(std::move(text->template get_ref<std::string&>()));
        } else {
            events_.push_back(detail::event_text(Event{record.type, record.payload}.to_json()));
        }
        history_bytes_ += events_.back().size() + record.dispatcher.size();
        ++statistics_.restored;
    }

    void commit(std::size_t first, std::size_t count, CommitDone done) override {
        batch_.clear();
        const auto& log = stream_.log();
        for (std::size_t i = first; i < first + count; ++i) {
            const auto& record = log.record(i);
            batch_.push_back(CommitEvent{i, log[i].dispatcher(), log.type_name(record.type_index), &record.payload,
                                         events_[i], stream_.model().schemas[record.type_index]});
        }
        commit_started_.reset();
        if (host_.observer()) commit_started_ = Clock::now();
        journal_->commit(batch_, std::move(done));
    }

    void committed(std::size_t first, std::span<const detail::CommitPipeline::Waiting> batch) override {
        commit_ended(true);
        last_commit_failed_ = false;
        for (std::size_t i = 0; i < batch.size(); ++i) broadcast(first + i, batch[i]);
    }

    void failed(std::size_t first, std::span<const detail::CommitPipeline::Waiting> batch,
                std::vector<detail::CommitPipeline::Waiting> behind, const std::string& error) override {
        commit_ended(false);
        last_commit_error_ = error;
        last_commit_failed_ = true;
        host_.log().error("commit.failed", "a commit failed: its events were taken back and their senders told",
                          {{"domain", name_}, {"error", error}, {"events", std::to_string(batch.size())}});
        const DispatchResult refusal{Outcome::failed, Reason{"event not stored: " + error}};
        for (std::size_t i = 0; i < batch.size(); ++i) {
            ++statistics_.not_stored;
            if (batch[i].from_user && accepting_ != first + i) {
                refuse(stream_.log()[first + i].dispatcher(), batch[i].id, events_[first + i], refusal);
            }
        }
        // Back to the last commit: the history's budget, the log, the texts and the state (rebuilt by
        // replay: see take_back), keeping what those behind the batch need to be judged again.
        for (std::size_t position = first; position < events_.size(); ++position) {
            history_bytes_ -= events_[position].size() + stream_.log()[position].dispatcher().size();
        }
        struct Again {
            std::string dispatcher;
            std::string text;
            detail::CommitPipeline::Waiting waiting;
        };
        std::vector<Again> again;
        for (std::size_t i = 0; i < behind.size(); ++i) {
            const std::size_t position = first + batch.size() + i;
            again.push_back(Again{std::string{stream_.log()[position].dispatcher()}, std::move(events_[position]), behind[i]});
        }
        stream_.take_back(first);
        events_.resize(first);
        // Those behind were validated on top of the lost events: judge them again, in order.
        for (auto& event : again) {
            ++statistics_.redispatched;
            const auto result = accept(event.dispatcher, event.text, event.waiting,
                                       [&] { return stream_.dispatch_text(event.dispatcher, event.text); });
            if (!result && event.waiting.from_user) refuse(event.dispatcher, event.waiting.id, event.text, result);
        }
    }

    DomainHost& host_;
    std::string name_;
    StreamDomainOptions options_;
    Stream<State> stream_;
    std::vector<std::string> events_;  // parallel to the log: each event's text as received
    std::size_t history_bytes_ = 0;
    std::set<std::string, std::less<>> reserved_;  // dispatcher names users may not link under
    std::set<std::string, std::less<>> members_;   // admitted (Audience::members)
    std::map<std::string, LinkedUser, std::less<>> linked_;  // linked users, as they linked (Audience::members)
    mutable StreamDomainStatistics statistics_;
    std::unique_ptr<DomainJournal> journal_;
    std::vector<CommitEvent> batch_;
    std::string last_commit_error_;
    bool last_commit_failed_ = false;             // until a commit succeeds again: not ready
    std::optional<TimePoint> commit_started_;     // the commit in flight began then (only with an observer)
    std::optional<std::size_t> accepting_;  // the event whose accept() call is committing it
    std::optional<detail::CommitPipeline> pipeline_;  // made after the restore: it starts at the stored end
};

template <class State>
StreamDomain(DomainHost&, std::string, const StreamModel<State>&, StreamDomainOptions = {}) -> StreamDomain<State>;
template <HasDomainHost Server, class State>
StreamDomain(Server&, std::string, const StreamModel<State>&, StreamDomainOptions = {}) -> StreamDomain<State>;

}  // namespace krmx

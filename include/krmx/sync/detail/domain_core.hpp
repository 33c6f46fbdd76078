#pragma once
// What every authoritative domain does, whatever its users are shown: the stream of accepted events (limits,
// reserved names, the audience, durable commits, the restore, the report). krmx::StreamDomain shows its
// members the events themselves; krmx::ProjectionDomain keeps them private and shows each user a view. They
// say how through four hooks: a user starts hearing the domain, stops hearing it, events are confirmed (in
// memory at once; durable once their commit succeeded), an event of a user is refused.

#include <cstddef>
#include <cstdint>
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

#include "krmx/core/detail/json_write.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/audience.hpp"
#include "krmx/sync/detail/commit_pipeline.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/domain_report.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/stream_messages.hpp"

namespace krmx {

/// Anything that owns a DomainHost for its transport (krmx::net::WebSocketServer, krmx::testing::Hub).
template <class T>
concept HasDomainHost = requires(T& t) {
    { t.host() } -> std::same_as<DomainHost&>;
};

namespace detail {

struct DomainCoreOptions {
    std::string_view kind;  // "krmx::StreamDomain", for messages
    std::size_t max_event_bytes = 0;
    std::size_t max_history_bytes = 0;
    Durability durability;
    Audience audience = Audience::everyone;
};

template <class State>
class DomainCore : protected HostedDomain, protected CommitPipeline::Owner {
  public:
    using Waiting = CommitPipeline::Waiting;

    /// Attaches to `host`; a durable domain restores its stream from its store first (throws
    /// krmx::ModelError when the model refuses a stored event, StoreError when the store fails).
    DomainCore(DomainHost& host, std::string name, const StreamModel<State>& model, DomainCoreOptions options)
        : host_(host), name_(std::move(name)), core_(std::move(options)), stream_(model) {
        if (event_message_bytes(name_, {}, core_.max_event_bytes) + 1024 > host_.options().max_message_bytes) {
            throw std::invalid_argument(std::string{core_.kind} + " " + detail::quoted(name_) + ": max_event_bytes (" +
                                        std::to_string(core_.max_event_bytes) +
                                        ") leaves no room for the envelope within the host's max_message_bytes (" +
                                        std::to_string(host_.options().max_message_bytes) + ")");
        }
        reserved_.emplace(server_dispatcher);
        if (core_.durability) {
            journal_ = core_.durability.open(name_, host_.loop());
            journal_->restore([this](RecordedEvent& record) { restore(record); });
            pipeline_.emplace(static_cast<CommitPipeline::Owner&>(*this), events_.size());
        }
        host_.attach(name_, *this);
    }
    DomainCore(const DomainCore&) = delete;
    DomainCore& operator=(const DomainCore&) = delete;
    ~DomainCore() override { host_.detach(name_); }

    /// Server code's own event, e.g. `dispatch(krmx::server_dispatcher, round::end())`. It takes the path of
    /// a user's event from its wire text, so server code is held to the same grammar and limits (a NaN in a
    /// double payload, written as null, is refused here rather than by every client). The dispatcher name
    /// becomes reserved.
    template <class P>
    DispatchResult dispatch(std::string_view dispatcher, const TypedEvent<P>& event) {
        return dispatch_text(dispatcher, detail::event_text(event.to_json()));
    }
    DispatchResult dispatch(std::string_view dispatcher, const nlohmann::json& event) {
        return dispatch_text(dispatcher, detail::event_text(event));
    }
    /// The same from JSON text. When durable, an accepted result means applied, not yet stored: users hear
    /// of it after the commit, and a failed commit takes the event back (counted in `not_stored`) or
    /// dispatches it again at another position.
    DispatchResult dispatch_text(std::string_view dispatcher, std::string_view text) {
        if (reserved_.find(dispatcher) == reserved_.end()) reserved_.emplace(dispatcher);
        return accept(dispatcher, text, {std::nullopt, false}, [&] { return stream_.dispatch_text(dispatcher, text); });
    }

    /// Lets `user` hear and send (Audience::members; with `everyone` it only records the name). A linked user
    /// is caught up at once (as on link); one that links later is then. True when it was no member before.
    bool admit(std::string_view user) {
        if (!members_.emplace(user).second) return false;
        if (core_.audience == Audience::everyone) return true;  // heard already
        if (const auto it = linked_.find(user); it != linked_.end()) start_hearing(it->first, it->second);
        return true;
    }
    /// Stops `user` hearing and sending; a linked user is told. Its events stay in the stream. True when it
    /// was a member.
    bool dismiss(std::string_view user) {
        const auto it = members_.find(user);
        if (it == members_.end()) return false;
        members_.erase(it);
        if (core_.audience == Audience::members && linked_.find(user) != linked_.end()) stop_hearing(user, true);
        return true;
    }
    /// Whether `user` hears this domain: always with Audience::everyone, else when admitted.
    [[nodiscard]] bool hears(std::string_view user) const {
        return core_.audience == Audience::everyone || members_.find(user) != members_.end();
    }
    /// The admitted users, linked or not, in name order.
    [[nodiscard]] const std::set<std::string, std::less<>>& members() const noexcept { return members_; }

    /// The state after every accepted event, including those that wait for their commit.
    [[nodiscard]] const State& state() const noexcept { return stream_.state(); }
    [[nodiscard]] const Stream<State>& stream() const noexcept { return stream_; }
    /// Accepted events, including those that wait for their commit.
    [[nodiscard]] std::size_t size() const noexcept { return stream_.size(); }
    /// Events confirmed to users: all but those that wait for their commit.
    [[nodiscard]] std::size_t confirmed_size() const noexcept {
        return pipeline_ ? pipeline_->committed() : events_.size();
    }
    /// Accepted events that wait for their commit, the batch in flight included.
    [[nodiscard]] std::size_t uncommitted() const noexcept { return pipeline_ ? pipeline_->uncommitted() : 0; }
    /// Whether a commit is in flight.
    [[nodiscard]] bool committing() const noexcept { return pipeline_ && pipeline_->committing(); }
    [[nodiscard]] bool durable() const noexcept { return journal_ != nullptr; }
    /// The event at `position` as the text it arrived as (and is stored and re-sent as).
    [[nodiscard]] std::string_view event_text(std::size_t position) const { return events_.at(position); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const StreamDomainStatistics& statistics() const noexcept {
        if (pipeline_) {
            statistics_.commits = pipeline_->commits();
            statistics_.failed_commits = pipeline_->failed_commits();
        }
        return statistics_;
    }

  protected:
    // ---- what the domain shows, and how ----------------------------------------------------------------

    /// `user` hears the domain from now on: it linked (and hears), or it was admitted while linked.
    virtual void start_hearing(std::string_view user, const LinkedUser& link) = 0;
    /// `user` hears no more of it: dismissed while linked (told), or unlinked (whether it heard or not).
    virtual void stop_hearing(std::string_view user, bool dismissed) = 0;
    /// Events [first, first + batch.size()) are confirmed: stored when durable, at once otherwise.
    virtual void confirmed(std::size_t first, std::span<const Waiting> batch) = 0;
    /// An event of `user` is refused (at once, or taken back because its commit failed).
    virtual void refuse(std::string_view user, std::optional<std::uint64_t> id, std::string_view raw_event,
                        const DispatchResult& result) = 0;

    // ---- for the domains -------------------------------------------------------------------------------

    [[nodiscard]] DomainHost& host() const noexcept { return host_; }
    [[nodiscard]] StreamDomainStatistics& counters() noexcept { return statistics_; }
    [[nodiscard]] bool reserved(std::string_view user) const { return reserved_.find(user) != reserved_.end(); }
    [[nodiscard]] bool linked(std::string_view user) const { return linked_.find(user) != linked_.end(); }
    [[nodiscard]] Audience audience() const noexcept { return core_.audience; }

    /// Checks the limits, dispatches (`dispatch()`), keeps the text, and then stores the event (durable:
    /// confirmed once stored) or confirms it at once.
    template <class Dispatch>
    DispatchResult accept(std::string_view dispatcher, std::string_view text, Waiting waiting, Dispatch&& dispatch) {
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
            confirm(position, std::span<const Waiting>{&waiting, 1});
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

    /// A user's event, the member `event` of the message the session read (`stream/append`'s event,
    /// `projection/action`'s action; null when it has none): the sender may not be a name the server
    /// dispatches with and must hear the domain, the event must be there and nest at most
    /// json_max_event_depth levels (the session's limit leaves room for the envelopes); then it is decoded
    /// from the members the session scanned, and accepted. A refusal is the caller's to answer (without an
    /// event: `without_event`).
    DispatchResult accept_from_user(std::string_view user, const Message& message, const JsonMember* event,
                                    std::optional<std::uint64_t> id, std::string_view without_event) {
        if (reserved(user)) {
            ++statistics_.reserved_name;
            return DispatchResult{Outcome::rejected, Reason{"the name " + detail::quoted(user) + " is reserved for the server"}};
        }
        if (!hears(user)) {
            ++statistics_.not_member;
            return DispatchResult{Outcome::rejected, Reason{"not a member of domain " + detail::quoted(name_)}};
        }
        if (!event) {
            ++statistics_.malformed;
            return DispatchResult{Outcome::malformed, Reason{std::string{without_event}}};
        }
        if (event->depth > json_max_event_depth) {
            ++statistics_.too_large;
            return DispatchResult{Outcome::malformed,
                                  Reason{"event nested too deeply (" + std::to_string(event->depth) + " levels; at most " +
                                         std::to_string(json_max_event_depth) + ")"}};
        }
        const auto* observer = host_.observer();
        const std::string_view text = event->value;
        return accept(user, text, {id, true, observer ? std::optional<TimePoint>{Clock::now()} : std::nullopt},
                      [&] { return stream_.dispatch_scanned(user, text, message.members_of(*event)); });
    }

    /// Linked members (Audience::members), in name order: a room is small beside the server, so walk it.
    template <class F>
    void for_each_linked_member(F&& f) const {
        for (const auto& member : members_) {
            if (const auto it = linked_.find(member); it != linked_.end()) f(it->first);
        }
    }

    // (dispatcher, text) of the event at a position, for history pages.
    auto entry() const {
        return [this](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{stream_.log()[i].dispatcher(), events_[i]};
        };
    }

  private:
    // ---- from the host -------------------------------------------------------------------------------

    void user_linked(std::string_view user, const LinkedUser& link) override {
        // Only an audience needs to know who is linked (admit, dismiss): a domain everyone hears keeps
        // nothing per user here.
        if (core_.audience == Audience::members) linked_.insert_or_assign(std::string{user}, link);
        if (hears(user)) start_hearing(user, link);
    }
    void user_unlinked(std::string_view user) override {
        if (const auto it = linked_.find(user); it != linked_.end()) linked_.erase(it);
        stop_hearing(user, false);
    }

    void confirm(std::size_t first, std::span<const Waiting> batch) {
        statistics_.accepted += batch.size();
        confirmed(first, batch);
        if (auto* observer = host_.observer()) {
            for (const auto& waiting : batch) {
                if (waiting.received) observer->append_confirmed(name_, Clock::now() - *waiting.received);
            }
        }
    }

  protected:
    // Its report; a domain type may add its own part (ProjectionDomain's counters).
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

  private:
    std::optional<DispatchResult> over_limits(std::string_view dispatcher, std::string_view text) const {
        if (text.size() > core_.max_event_bytes ||
            event_message_bytes(name_, dispatcher, text.size()) > host_.options().max_message_bytes) {
            return DispatchResult{Outcome::malformed,
                                  Reason{"event too large (" + std::to_string(text.size()) + " bytes; at most " +
                                         std::to_string(core_.max_event_bytes) + ")"}};
        }
        if (history_bytes_ + text.size() + dispatcher.size() > core_.max_history_bytes) {
            return DispatchResult{Outcome::rejected,
                                  Reason{"stream is full (" + std::to_string(history_bytes_) +
                                         " bytes of history; at most " + std::to_string(core_.max_history_bytes) +
                                         ")"}};
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

    // ---- durability ------------------------------------------------------------------------------------

    // A stored event, loaded when the domain is made: applied and kept, neither stored again nor shown.
    // The stored log is the truth: an event the model refuses stops the restore.
    void restore(RecordedEvent& record) {
        const std::size_t position = events_.size();
        const auto refused = [&](const std::string& why) {
            return ModelError(std::string{core_.kind} + " " + detail::quoted(name_) + ": stored event " +
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

    void commit_ended(bool stored) {
        if (!commit_started_) return;
        const auto started = *std::exchange(commit_started_, std::nullopt);
        if (auto* observer = host_.observer()) observer->commit_ended(name_, Clock::now() - started, stored);
    }

    void committed(std::size_t first, std::span<const Waiting> batch) override {
        commit_ended(true);
        last_commit_failed_ = false;
        confirm(first, batch);
    }

    void failed(std::size_t first, std::span<const Waiting> batch, std::vector<Waiting> behind,
                const std::string& error) override {
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
            Waiting waiting;
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
    DomainCoreOptions core_;
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
    std::optional<CommitPipeline> pipeline_;  // made after the restore: it starts at the stored end
};

}  // namespace detail
}  // namespace krmx

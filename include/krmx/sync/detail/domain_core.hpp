#pragma once
// What every authoritative domain does, whatever its users are shown: the stream of accepted events (limits,
// reserved names, the audience, durable commits, the restore, the report). krmx::StreamDomain shows its
// members the events themselves; krmx::ProjectionDomain keeps them private and shows each user a view. They
// say how through four hooks: a user starts hearing the domain, stops hearing it, events are confirmed (in
// memory at once; durable once their commit succeeded), an event of a user is refused.
//
// Memory (durable domains): the domain keeps a tail of its stream in memory (MemoryPolicy) and reads older
// events back from its journal in pages, on the journal's thread, when a joiner or a resync needs them
// (send_events). Every so often it takes a capture (the state at a position, a copy); once every event
// before it is stored, the capture becomes the floor the stream rolls back to, the events before it are let
// go when the tail is full, and it is saved as a snapshot when its journal keeps them and the model can
// write its state (StreamModel::snapshots). A restart loads the newest usable snapshot and replays only the
// events after it. An in-memory domain keeps every event, up to max_history_bytes.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
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
    // A copy of the state at a position (durable domains): see the notes at the top.
    struct Capture {
        std::size_t position;
        State state;                // after events [0, position)
        std::string last_event_id;  // of event position - 1, as stored
    };

  public:
    using Waiting = CommitPipeline::Waiting;

    /// Attaches to `host`; a durable domain restores its stream from its store first (throws
    /// krmx::ModelError when the model refuses a stored event, StoreError when the store fails, and
    /// std::invalid_argument when its journal keeps snapshots the model cannot write).
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
            memory_ = journal_->memory_policy();
            check_snapshots();
            restore_all();
            pipeline_.emplace(static_cast<CommitPipeline::Owner&>(*this), stream_.size());
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
        if (core_.audience == Audience::members && linked_.find(user) != linked_.end()) {
            // Old events on their way from the store are no longer its to hear.
            if (const auto catching_up = catching_up_.find(user); catching_up != catching_up_.end()) {
                catching_up_.erase(catching_up);
            }
            stop_hearing(user, true);
        }
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
        return pipeline_ ? pipeline_->committed() : stream_.size();
    }
    /// The first event held in memory: 0 in memory; later for a durable domain that let older ones go.
    [[nodiscard]] std::size_t held_from() const noexcept { return stream_.log().base(); }
    /// Accepted events that wait for their commit, the batch in flight included.
    [[nodiscard]] std::size_t uncommitted() const noexcept { return pipeline_ ? pipeline_->uncommitted() : 0; }
    /// Whether a commit is in flight.
    [[nodiscard]] bool committing() const noexcept { return pipeline_ && pipeline_->committing(); }
    [[nodiscard]] bool durable() const noexcept { return journal_ != nullptr; }
    /// The event at `position` as the text it arrived as (and is stored and re-sent as). Throws
    /// std::out_of_range for a position not held in memory (see held_from).
    [[nodiscard]] std::string_view event_text(std::size_t position) const {
        if (position < held_from()) {
            throw std::out_of_range("event " + std::to_string(position) + " of " + detail::quoted(name_) +
                                    " is no longer held in memory (held from " + std::to_string(held_from()) + ")");
        }
        return texts_.at(position - held_from());
    }
    /// Snapshots saved, restored from and skipped.
    [[nodiscard]] const SnapshotStatistics& snapshot_statistics() const noexcept { return snapshot_statistics_; }

    /// How state_at ends: the state, or why there is none.
    using StateAtDone = std::function<void(std::optional<State> state, std::optional<std::string> error)>;
    /// The state after the first `position` confirmed events, to see how a game reached a state nobody
    /// expected: rebuilt from the nearest state the domain has at or before it (the floor of its tail, its
    /// snapshots, the initial state) and the events after that, read back from the store for those it no
    /// longer holds. `done` runs on the domain's thread: in the call when memory (or a synchronous journal)
    /// serves, later when the store is read off the loop. A position past the confirmed events is an error.
    void state_at(std::size_t position, StateAtDone done) {
        if (position > confirmed_size()) {
            done(std::nullopt, "position " + std::to_string(position) + " is past the confirmed events (" +
                                   std::to_string(confirmed_size()) + ")");
            return;
        }
        if (position >= held_from()) {
            std::optional<State> state;
            std::optional<std::string> error;
            try {
                state.emplace(stream_.state_at(position));
            } catch (const std::exception& e) {
                error = e.what();
            }
            done(std::move(state), std::move(error));
            return;
        }
        // Before the tail: the newest snapshot at or before the position, else the start; then the store.
        auto replay = std::make_shared<Stream<State>>(stream_.model_handle());
        std::size_t start = 0;
        if (const auto& codec = stream_.model().snapshots; codec && journal_->keeps_snapshots()) {
            SnapshotStatistics ignored;  // counted when the domain restores, not when someone looks back
            for (auto& snapshot : journal_->snapshots(codec->revision, ignored)) {
                if (snapshot.position > position) continue;
                try {
                    replay->restore_at(codec->load(snapshot.state), snapshot.position);
                    start = snapshot.position;
                    break;
                } catch (const std::exception&) {
                }
            }
        }
        auto next = std::make_shared<std::size_t>(start);
        if (start == position) {
            done(replay->state(), std::nullopt);
            return;
        }
        read_pages(
            [next, position]() -> std::optional<std::pair<std::size_t, std::size_t>> {
                if (*next >= position) return std::nullopt;
                return std::pair{*next, std::min(history_read_page, position - *next)};
            },
            [replay, next, position, done](std::size_t, std::vector<RecordedEvent> records, std::optional<std::string> error) {
                if (error) {
                    done(std::nullopt, std::move(error));
                    return false;
                }
                for (auto& record : records) {
                    const auto result = replay->dispatch(record.dispatcher, record.type, record.payload ? &*record.payload : nullptr);
                    if (!result) {
                        done(std::nullopt, "stored event " + std::to_string(record.revision) + " is refused on replay (" +
                                               std::string{result.reason()} + ")");
                        return false;
                    }
                }
                *next += records.size();
                if (*next < position) return true;
                done(replay->state(), std::nullopt);
                return false;
            });
    }
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
    /// The events before `position`, whose state is `state`, are no longer held in memory.
    virtual void forgot_before(std::size_t position, const State& state) {
        (void)position;
        (void)state;
    }

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
        texts_.emplace_back(text);
        history_bytes_ += text.size() + dispatcher.size();
        if (!pipeline_) {
            confirm(position, std::span<const Waiting>{&waiting, 1});
            return result;
        }
        capture_if_due(text.size() + dispatcher.size(), {});
        // A commit may run, and fail, in the call (synchronous commits): then the event is taken back, and
        // its sender hears of that through this result, not from failed().
        accepting_ = position;
        pipeline_->add(waiting);
        accepting_.reset();
        if (stream_.size() <= position) return DispatchResult{Outcome::failed, Reason{"event not stored: " + last_commit_error_}};
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

    // (dispatcher, text) of the event at a held position, for history pages.
    auto entry() const {
        return [this](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{stream_.log()[i].dispatcher(),
                                                                 texts_[i - held_from()]};
        };
    }

    /// The users who hear the domain's events as they are confirmed: linked (members, with an audience) and
    /// not catching up on old events read from the store.
    template <class F>
    void for_each_live_hearer(F&& f) const {
        const auto live = [&](const std::string& user) { return catching_up_.empty() || !catching_up_.contains(user); };
        if (core_.audience == Audience::members) {
            // A room is small beside the server: walk its members, not every linked user.
            for (const auto& member : members_) {
                if (const auto it = linked_.find(member); it != linked_.end() && live(it->first)) f(std::string_view{it->first});
            }
            return;
        }
        for (const auto& [user, link] : linked_) {
            if (live(user)) f(std::string_view{user});
        }
    }
    /// Whether every linked user that hears the domain gets its events as they are confirmed, so that a
    /// broadcast reaches exactly them (Audience::everyone and nobody catching up).
    [[nodiscard]] bool broadcast_reaches_hearers() const noexcept {
        return core_.audience == Audience::everyone && catching_up_.empty();
    }
    /// How a user announced itself when it linked (durable domains and domains with an audience keep it).
    [[nodiscard]] const LinkedUser* link_of(std::string_view user) const {
        const auto it = linked_.find(user);
        return it == linked_.end() ? nullptr : &it->second;
    }

    /// The state's JSON text at a position, for joiners: the newest capture the model could write (durable
    /// domains whose model has snapshots on); none before the first.
    struct LatestSnapshot {
        std::size_t position = 0;
        std::string text;
        [[nodiscard]] static LatestSnapshot of(std::size_t position, const nlohmann::json& state) {
            return {position, state.dump(-1, ' ', false, json_replace)};
        }
    };
    /// For a joiner: the state now when every accepted event is stored (written once per position), else
    /// the newest capture; none when the model writes no snapshots or the domain is not durable.
    [[nodiscard]] const std::optional<LatestSnapshot>& latest_snapshot() {
        const auto& codec = stream_.model().snapshots;
        if (codec && journal_ && uncommitted() == 0 && stream_.size() > 0 &&
            (!latest_snapshot_ || latest_snapshot_->position < stream_.size())) {
            try {
                latest_snapshot_ = LatestSnapshot::of(stream_.size(), codec->save(stream_.state()));
            } catch (const std::exception& e) {
                unwritable_state(e.what());
            }
        }
        return latest_snapshot_;
    }
    [[nodiscard]] std::optional<std::uint32_t> snapshot_revision() const noexcept {
        return stream_.model().snapshots ? std::optional<std::uint32_t>{stream_.model().snapshots->revision}
                                         : std::nullopt;
    }

    /// How send_events hands a user its events.
    enum class EventsForm : std::uint8_t { pages, appends };
    /// Sends `user` the confirmed events from `from` on, as `stream/history` pages or one `stream/append`
    /// each. Held events go at once; older ones are read from the journal a page at a time, off this thread,
    /// and the user hears no live events until it caught up (then the held ones follow, in order).
    void send_events(std::string_view user, std::size_t from, EventsForm form) {
        catching_up_.erase(std::string{user});  // a newer request replaces one under way
        if (from >= held_from() || !journal_) {
            send_held(user, std::max(from, held_from()), form, false);
            return;
        }
        auto& catch_up = catching_up_[std::string{user}];
        catch_up = CatchUp{from, ++catch_up_serial_, form};
        read_for(std::string{user});
    }

  private:
    // ---- from the host -------------------------------------------------------------------------------

    void user_linked(std::string_view user, const LinkedUser& link) override {
        // Only an audience needs to know who is linked (admit, dismiss): a domain everyone hears keeps
        // nothing per user here.
        // (Durable domains: to leave out who is catching up on old events.)
        if (core_.audience == Audience::members || journal_) linked_.insert_or_assign(std::string{user}, link);
        if (hears(user)) start_hearing(user, link);
    }
    void user_unlinked(std::string_view user) override {
        if (const auto it = linked_.find(user); it != linked_.end()) linked_.erase(it);
        if (const auto it = catching_up_.find(user); it != catching_up_.end()) catching_up_.erase(it);
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

    // ---- for the inspector (net/inspector.hpp) -----------------------------------------------------------

    void inspect_events(std::size_t from, std::size_t count, InspectDone done) override {
        const std::size_t end = std::min(confirmed_size(), from + std::min(count, max_inspected_events));
        auto out = std::make_shared<nlohmann::json>(nlohmann::json::array());
        if (from >= end) return done(std::move(*out), std::nullopt);
        const auto add = [](nlohmann::json& list, std::size_t position, std::string_view dispatcher, std::string_view text) {
            // Event texts were read under the one grammar when they were accepted: they parse.
            list.push_back({{"position", position}, {"dispatcher", dispatcher},
                            {"event", nlohmann::json::parse(text, nullptr, false)}});
        };
        const auto add_held = [this, add, end](nlohmann::json& list, std::size_t next) {
            for (std::size_t i = next; i < end; ++i) {
                const auto [dispatcher, text] = entry()(i);
                add(list, i, dispatcher, text);
            }
        };
        if (from >= held_from() || !journal_) {
            add_held(*out, from);
            return done(std::move(*out), std::nullopt);
        }
        // Old events from the store, then (the tail may have moved meanwhile) the rest from memory.
        auto next = std::make_shared<std::size_t>(from);
        read_pages(
            [this, next, end]() -> std::optional<std::pair<std::size_t, std::size_t>> {
                if (*next >= end || *next >= held_from()) return std::nullopt;
                return std::pair{*next, std::min({history_read_page, held_from() - *next, end - *next})};
            },
            [this, out, next, end, add, add_held, done](std::size_t, std::vector<RecordedEvent> records,
                                                        std::optional<std::string> error) {
                if (error) {
                    done({}, std::move(error));
                    return false;
                }
                for (auto& record : records) add(*out, static_cast<std::size_t>(record.revision), record.dispatcher, stored_text(record));
                *next += records.size();
                if (*next < end && *next < held_from()) return true;
                add_held(*out, *next);
                done(std::move(*out), std::nullopt);
                return false;
            });
    }

    void inspect_state(std::size_t position, InspectDone done) override {
        state_at(position, [this, done](std::optional<State> state, std::optional<std::string> error) {
            if (!state) return done({}, std::move(error));
            try {
                if (const auto& codec = stream_.model().snapshots) return done(codec->save(*state), std::nullopt);
                if constexpr (requires(const State& s) { nlohmann::json(s); }) {
                    return done(nlohmann::json(*state), std::nullopt);
                } else {
                    return done({}, std::optional<std::string>{
                                        "the state has no JSON: give it to_json (or turn snapshots on) to see it here"});
                }
            } catch (const std::exception& e) {
                done({}, std::string{"to_json failed: "} + e.what());
            }
        });
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
        r.held_from = held_from();
        r.durable = durable();
        r.uncommitted = uncommitted();
        r.committing = committing();
        if (last_commit_failed_) r.not_ready = "last commit failed: " + last_commit_error_;
        if (journal_) r.store = journal_->store_statistics();
        if (journal_ && stream_.model().snapshots) r.snapshots = snapshot_statistics_;
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
        // A durable domain lets old events go (they are in its store): only an in-memory one fills up.
        if (!journal_ && history_bytes_ + text.size() + dispatcher.size() > core_.max_history_bytes) {
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
        const std::size_t position = stream_.size();
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
        texts_.push_back(stored_text(record));
        const std::size_t bytes = texts_.back().size() + record.dispatcher.size();
        history_bytes_ += bytes;
        ++statistics_.restored;
        last_restored_id_ = std::move(record.id);
        // Everything restored is stored: a capture is used at once (and not saved: see restore_all).
        capture_if_due(bytes, last_restored_id_);
        use_capture_if_stored(stream_.size(), false, false);
    }

    // The text a stored event is re-sent as: as it arrived (metadata "text"), or rebuilt from its parts.
    static std::string stored_text(RecordedEvent& record) {
        const auto text = record.metadata.find("text");
        if (text != record.metadata.end() && text->is_string()) return std::move(text->template get_ref<std::string&>());
        return detail::event_text(Event{record.type, record.payload}.to_json());
    }

    // A journal that keeps snapshots needs a model that can write them, and a state whose JSON reads back
    // as itself: said now, at startup, not at the first snapshot.
    void check_snapshots() {
        const auto& codec = stream_.model().snapshots;
        if (!codec) {
            if (journal_->keeps_snapshots()) {
                throw std::invalid_argument(std::string{core_.kind} + " " + detail::quoted(name_) +
                                            ": its journal keeps snapshots, but the model has none: call "
                                            "StreamModel::snapshots(revision) (State needs to_json and from_json)");
            }
            return;
        }
        const auto fail = [&](const std::string& why) {
            return std::invalid_argument(std::string{core_.kind} + " " + detail::quoted(name_) +
                                         ": the state cannot be snapshot: " + why);
        };
        nlohmann::json saved;
        try {
            saved = codec->save(stream_.state());
            (void)saved.dump();  // text that JSON cannot hold (invalid UTF-8) throws here
        } catch (const std::exception& e) {
            throw fail(std::string{"to_json failed on the initial state: "} + e.what());
        }
        try {
            if (codec->save(codec->load(saved)) != saved) {
                throw fail("from_json(to_json(initial state)) writes other JSON than " + saved.dump().substr(0, 200));
            }
        } catch (const std::invalid_argument&) {
            throw;
        } catch (const std::exception& e) {
            throw fail(std::string{"from_json failed on what to_json wrote of the initial state: "} + e.what());
        }
    }

    // The newest usable snapshot and the events after it, else every stored event; then a snapshot of the
    // restored state when the last one is old (or there was none).
    void restore_all() {
        const auto& codec = stream_.model().snapshots;
        const auto load = [this](RecordedEvent& record) { restore(record); };
        bool restored = false;
        if (codec && journal_->keeps_snapshots()) {
            for (auto& snapshot : journal_->snapshots(codec->revision, snapshot_statistics_)) {
                std::optional<State> state;
                try {
                    state.emplace(codec->load(snapshot.state));
                } catch (const std::exception&) {
                    ++snapshot_statistics_.unreadable;
                    continue;
                }
                stream_.restore_at(std::move(*state), snapshot.position);
                // (Before the tail is loaded: the captures taken while it is are newer.)
                saved_position_ = snapshot.position;
                latest_snapshot_ = LatestSnapshot::of(snapshot.position, snapshot.state);
                if (journal_->restore_after(snapshot, load)) {
                    ++snapshot_statistics_.restored;
                    restored = true;
                    break;
                }
                ++snapshot_statistics_.not_following;
                saved_position_ = 0;
                latest_snapshot_.reset();
                stream_.reset();
            }
        }
        if (!restored) {
            stream_.reset();
            journal_->restore(load);
        }
        if (snapshot_due(stream_.size()) && !last_restored_id_.empty()) {
            // The restored state, stored to the last event: saved now, so that the next restart is short.
            use_capture(Capture{stream_.size(), stream_.state(), last_restored_id_}, true, false);
        }
    }

    // ---- memory: captures, the tail, old events read back ------------------------------------------------

    // After each accepted event (durable): a capture of the state when enough came since the last one.
    // `id` is the stored id of the event just accepted when it has one (restored); otherwise the commit that
    // stores the event gives it its id (commit), so that a snapshot names the event it follows.
    void capture_if_due(std::size_t bytes, std::string_view id) {
        ++since_capture_events_;
        since_capture_bytes_ += bytes;
        since_saved_bytes_ += bytes;
        if (capture_) return;
        const bool saves = stream_.model().snapshots && journal_->keeps_snapshots();
        const std::size_t every_events = std::max<std::size_t>(
            1, saves ? std::min(memory_.tail_events / 2, memory_.snapshot_every_events) : memory_.tail_events / 2);
        const std::size_t every_bytes = std::max<std::size_t>(
            1, saves ? std::min(memory_.tail_bytes / 2, memory_.snapshot_every_bytes) : memory_.tail_bytes / 2);
        if (since_capture_events_ < every_events && since_capture_bytes_ < every_bytes) return;
        since_capture_events_ = 0;
        since_capture_bytes_ = 0;
        capture_.emplace(Capture{stream_.size(), stream_.state(), std::string{id}});
    }

    // Once every event before the capture is stored, it is used (once).
    void use_capture_if_stored(std::size_t stored, bool may_save, bool aside) {
        if (!capture_ || capture_->position > stored) return;
        Capture capture = std::move(*capture_);
        capture_.reset();
        use_capture(std::move(capture), may_save, aside);
    }

    void unwritable_state(std::string_view error) {
        ++snapshot_statistics_.save_failures;
        host_.log().error("snapshot.failed", "the state could not be written as JSON",
                          {{"domain", name_}, {"error", std::string{error}}});
    }

    // A capture whose events are all stored: the state joiners may get, a snapshot when one is due, and the
    // floor of the stream when the tail is full. Its JSON is written `aside` (DomainJournal::run_aside, off
    // the loop where the journal has a thread for it), so that writing a large state does not hold the loop
    // up: the loop hands the capture over and finishes with it when the JSON comes back (captured).
    struct CaptureJob {
        Capture capture;
        bool save = false;            // a snapshot is due: store it
        std::size_t saved_before = 0;  // saved_position_ before it: back to it if the JSON fails
        nlohmann::json json = {};
        LatestSnapshot latest = {};  // its text, for joiners
    };
    void use_capture(Capture capture, bool may_save, bool aside) {
        const auto& codec = stream_.model().snapshots;
        if (!codec) {
            if (tail_full()) forget_before(capture.position, std::move(capture.state));
            return;
        }
        const bool save = may_save && snapshot_due(capture.position) && !capture.last_event_id.empty();
        const std::size_t saved_before = saved_position_;
        if (save) {
            saved_position_ = capture.position;  // the captures taken meanwhile are not due
            since_saved_bytes_ = 0;
        }
        auto job = std::make_shared<CaptureJob>(CaptureJob{std::move(capture), save, saved_before});
        auto write = [job, save_state = codec->save] {
            job->json = save_state(job->capture.state);
            job->latest = LatestSnapshot::of(job->capture.position, job->json);
        };
        auto done = [this, alive = std::weak_ptr<int>(alive_), job, aside](std::optional<std::string> error) {
            if (alive.expired()) return;
            const bool written = !error;
            captured(*job, std::move(error));
            if (!aside) return;
            --captures_aside_;
            if (written) capture_now_if_quiet();  // (after a failure, the next commit tries again)
        };
        if (aside) {
            ++captures_aside_;
            journal_->run_aside(std::move(write), std::move(done));
        } else {
            run_in_call(write, done);
        }
    }
    void captured(CaptureJob& job, std::optional<std::string> error) {
        const auto position = job.capture.position;
        if (error) {
            unwritable_state(*error);
            if (job.save && saved_position_ == position) saved_position_ = job.saved_before;  // the next one is due
        } else {
            if (!latest_snapshot_ || latest_snapshot_->position < position) {
                latest_snapshot_ = std::move(job.latest);
            }
            if (job.save) {
                journal_->save_snapshot(stream_.model().snapshots->revision,
                                        StoredSnapshot{position, std::move(job.json), job.capture.last_event_id},
                                        [this, alive = std::weak_ptr<int>(alive_)](std::optional<std::string> failed) {
                                            if (alive.expired()) return;
                                            if (!failed) {
                                                ++snapshot_statistics_.saved;
                                                return;
                                            }
                                            ++snapshot_statistics_.save_failures;
                                            host_.log().error("snapshot.failed",
                                                              "a snapshot could not be saved; the previous one stays",
                                                              {{"domain", name_}, {"error", *failed}});
                                        });
            }
        }
        if (tail_full()) forget_before(position, std::move(job.capture.state));
    }

    // Whether a snapshot at `position` should be saved: the model writes them, the journal keeps them, and
    // enough came since the last one.
    [[nodiscard]] bool snapshot_due(std::size_t position) const noexcept {
        return stream_.model().snapshots && journal_->keeps_snapshots() && position > saved_position_ &&
               (position - saved_position_ >= memory_.snapshot_every_events ||
                since_saved_bytes_ >= memory_.snapshot_every_bytes);
    }

    [[nodiscard]] bool tail_full() const noexcept {
        return stream_.log().held() > memory_.tail_events || history_bytes_ > memory_.tail_bytes;
    }

    void forget_before(std::size_t position, State state) {
        const std::size_t from = held_from();
        if (position <= from) return;
        for (std::size_t p = from; p < position; ++p) {
            history_bytes_ -= texts_.front().size() + stream_.log()[p].dispatcher().size();
            texts_.pop_front();
        }
        forgot_before(position, state);
        stream_.forget_before(position, std::move(state));
    }

    // The held events [from, confirmed) to `user`; `more_before`: pages read from the store came first.
    void send_held(std::string_view user, std::size_t from, EventsForm form, bool more_before) {
        ++statistics_.histories_sent;
        const std::size_t end = confirmed_size();
        if (form == EventsForm::pages) {
            if (from >= end && more_before) return;  // the store's last page said it all (without `more`)
            detail::history_pages(name_, from, end, host_.options().max_message_bytes, entry(),
                                  [&](std::string page) { host_.send(user, std::move(page)); });
            return;
        }
        for (std::size_t i = from; i < end; ++i) {
            const auto [dispatcher, text] = entry()(i);
            host_.send(user, detail::append_message(name_, dispatcher, text, i, std::nullopt));
        }
    }

    // Reads stored events page after page, off this thread: `next()` names the next page (from, count), or
    // none when done; `got(from, records, error)` takes each page and says whether to go on (a page that is
    // not the events asked for comes with an error). A synchronous journal reads in the call: its pages
    // follow in a loop here, not by recursion. Nothing runs once the domain is gone.
    using NextPage = std::function<std::optional<std::pair<std::size_t, std::size_t>>()>;
    using GotPage = std::function<bool(std::size_t, std::vector<RecordedEvent>, std::optional<std::string>)>;
    void read_pages(NextPage next, GotPage got) {
        struct Page {
            std::vector<RecordedEvent> records;
            std::optional<std::string> error;
        };
        for (;;) {
            const auto page = next();
            if (!page) return;
            const std::size_t from = page->first;  // (not a structured binding: clang 14 cannot capture one)
            const std::size_t count = page->second;
            auto in_call = std::make_shared<std::optional<Page>>();
            auto returned = std::make_shared<bool>(false);
            const auto checked = [from, count](std::vector<RecordedEvent>& records, std::optional<std::string>& error) {
                bool dense = !error && records.size() == count;
                for (std::size_t i = 0; dense && i < records.size(); ++i) dense = records[i].revision == from + i;
                if (!error && !dense) error = "the store does not hold events " + std::to_string(from) + " to " + std::to_string(from + count);
            };
            journal_->read(from, count,
                           [this, alive = std::weak_ptr<int>(alive_), next, got, from, in_call, returned, checked](
                               std::vector<RecordedEvent> records, std::optional<std::string> error) {
                               if (alive.expired()) return;
                               checked(records, error);
                               if (!*returned) {
                                   in_call->emplace(Page{std::move(records), std::move(error)});
                                   return;
                               }
                               if (got(from, std::move(records), std::move(error))) read_pages(next, got);
                           });
            *returned = true;
            if (!*in_call) return;  // on its way: `got` goes on from there
            if (!got(from, std::move((*in_call)->records), std::move((*in_call)->error))) return;
        }
    }

    // The next pages of old events for a user catching up.
    void read_for(const std::string& user) {
        const auto it = catching_up_.find(user);
        if (it == catching_up_.end()) return;
        const std::uint64_t serial = it->second.serial;
        read_pages(
            [this, user, serial]() -> std::optional<std::pair<std::size_t, std::size_t>> {
                const auto found = catching_up_.find(user);
                if (found == catching_up_.end() || found->second.serial != serial) return std::nullopt;
                const std::size_t from = found->second.next;
                return std::pair{from, std::min(history_read_page, held_from() - from)};
            },
            [this, user, serial](std::size_t from, std::vector<RecordedEvent> records, std::optional<std::string> error) {
                return read_done(user, serial, from, std::move(records), std::move(error));
            });
    }

    // The store took a commit: the users whose reads of old events failed read again. (Names first: a read
    // may end in the call and change catching_up_.)
    void retry_failed_reads() {
        std::vector<std::string> users;
        for (auto& [user, catch_up] : catching_up_) {
            if (catch_up.failed) {
                catch_up.failed = false;
                users.push_back(user);
            }
        }
        for (const auto& user : users) read_for(user);
    }

    // Failed reads are tried again on the transport's timer, where it has one: 100 ms after a failure, twice
    // as long after each further one, at most 5 s apart; 100 ms again once a read succeeds.
    void retry_reads_later() {
        const auto& after = host_.loop().after;
        if (!after || read_retry_pending_) return;
        read_retry_pending_ = true;
        after(read_retry_delay_, [this, alive = std::weak_ptr<int>(alive_)] {
            if (alive.expired()) return;
            read_retry_pending_ = false;
            retry_failed_reads();
        });
        read_retry_delay_ = std::min(read_retry_delay_ * 2, last_read_retry);
    }

    // A page read back: sent, and true when more pages must be read.
    bool read_done(const std::string& user, std::uint64_t serial, std::size_t from, std::vector<RecordedEvent> records,
                   std::optional<std::string> error) {
        const auto it = catching_up_.find(user);
        if (it == catching_up_.end() || it->second.serial != serial) return false;  // unlinked, or asked anew
        const EventsForm form = it->second.form;
        if (error) {
            // The user stays out of the live events (a gap in them would lose events without a word) and
            // its read is tried again after the next stored commit (the store works then), on a timer (a
            // quiet domain may see no commit), or on a resync.
            ++statistics_.history_read_failures;
            it->second.failed = true;
            host_.log().error("history.read_failed",
                              "old events could not be read back for a user: tried again after the next commit "
                              "or a wait",
                              {{"domain", name_}, {"user", user}, {"error", *error}});
            retry_reads_later();
            return false;
        }
        ++statistics_.history_reads;
        read_retry_delay_ = first_read_retry;
        std::vector<std::string> texts;
        texts.reserve(records.size());
        for (auto& record : records) texts.push_back(stored_text(record));
        const auto at = [&](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{records[i - from].dispatcher, texts[i - from]};
        };
        const std::size_t end = from + records.size();
        if (form == EventsForm::pages) {
            detail::history_pages(name_, from, end, host_.options().max_message_bytes, at,
                                  [&](std::string page) { host_.send(user, std::move(page)); },
                                  end < confirmed_size());
        } else {
            for (std::size_t i = from; i < end; ++i) {
                const auto [dispatcher, text] = at(i);
                host_.send(user, detail::append_message(name_, dispatcher, text, i, std::nullopt));
            }
        }
        it->second.next = end;
        if (end < held_from()) return true;
        // Caught up with what memory holds: the rest at once, and live from now on.
        catching_up_.erase(it);
        send_held(user, end, form, true);
        return false;
    }


    // Each event gets its id here (the store would make one anyway): a capture and a snapshot name the event
    // they follow by it.
    void commit(std::size_t first, std::size_t count, CommitDone done) override {
        batch_.clear();
        batch_ids_.clear();
        for (std::size_t i = 0; i < count; ++i) batch_ids_.push_back(new_event_id());
        const auto& log = stream_.log();
        for (std::size_t i = first; i < first + count; ++i) {
            const auto& record = log.record(i);
            batch_.push_back(CommitEvent{i, log[i].dispatcher(), log.type_name(record.type_index), &record.payload,
                                         texts_[i - held_from()], stream_.model().schemas[record.type_index],
                                         batch_ids_[i - first]});
            if (capture_ && capture_->position == i + 1) capture_->last_event_id = batch_ids_[i - first];
        }
        in_flight_last_id_ = batch_ids_.back();
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
        last_committed_id_ = in_flight_last_id_;
        confirm(first, batch);
        use_capture_if_stored(first + batch.size(), true, true);
        retry_failed_reads();
        capture_now_if_quiet();
    }

    // After a burst, with everything stored and the tail over its size or a snapshot due: the state now is a
    // capture of everything stored. Not while one is being written: it comes when that one is back.
    void capture_now_if_quiet() {
        if (!capture_ && captures_aside_ == 0 && pipeline_->uncommitted() == 0 &&
            (tail_full() || snapshot_due(stream_.size()))) {
            since_capture_events_ = 0;
            since_capture_bytes_ = 0;
            use_capture(Capture{stream_.size(), stream_.state(), last_committed_id_}, true, true);
        }
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
                refuse(stream_.log()[first + i].dispatcher(), batch[i].id, texts_[first + i - held_from()], refusal);
            }
        }
        // Back to the last commit: the history's budget, the log, the texts and the state (rebuilt by
        // replay: see take_back), keeping what those behind the batch need to be judged again.
        if (capture_ && capture_->position > first) capture_.reset();  // it holds events taken back
        for (std::size_t position = first; position < stream_.size(); ++position) {
            history_bytes_ -= texts_[position - held_from()].size() + stream_.log()[position].dispatcher().size();
        }
        struct Again {
            std::string dispatcher;
            std::string text;
            Waiting waiting;
        };
        std::vector<Again> again;
        for (std::size_t i = 0; i < behind.size(); ++i) {
            const std::size_t position = first + batch.size() + i;
            again.push_back(Again{std::string{stream_.log()[position].dispatcher()},
                                  std::move(texts_[position - held_from()]), behind[i]});
        }
        stream_.take_back(first);
        texts_.resize(first - held_from());
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
    std::deque<std::string> texts_;  // parallel to the held log: each event's text as received
    std::size_t history_bytes_ = 0;  // of the held events
    std::set<std::string, std::less<>> reserved_;  // dispatcher names users may not link under
    std::set<std::string, std::less<>> members_;   // admitted (Audience::members)
    std::map<std::string, LinkedUser, std::less<>> linked_;  // linked users, as they linked (Audience::members)
    mutable StreamDomainStatistics statistics_;
    std::unique_ptr<DomainJournal> journal_;
    std::vector<CommitEvent> batch_;
    std::vector<std::string> batch_ids_;  // the ids of the batch's events (CommitEvent::id views them)
    std::string in_flight_last_id_;       // of the last event of the batch in flight
    std::string last_committed_id_;       // of the last event stored
    std::string last_commit_error_;
    bool last_commit_failed_ = false;             // until a commit succeeds again: not ready
    std::optional<TimePoint> commit_started_;     // the commit in flight began then (only with an observer)
    std::optional<std::size_t> accepting_;  // the event whose accept() call is committing it
    std::optional<CommitPipeline> pipeline_;  // made after the restore: it starts at the stored end

    // Memory (durable): see the notes at the top.
    struct CatchUp {
        std::size_t next = 0;  // the next event to read back
        std::uint64_t serial = 0;
        EventsForm form = EventsForm::pages;
        bool failed = false;  // its last read failed: tried again after the next stored commit or a wait
    };
    static constexpr std::size_t history_read_page = 4096;
    static constexpr std::chrono::milliseconds first_read_retry{100};
    static constexpr std::chrono::milliseconds last_read_retry{5000};
    std::chrono::milliseconds read_retry_delay_ = first_read_retry;
    bool read_retry_pending_ = false;  // a timer will retry the failed reads
    static constexpr std::size_t max_inspected_events = 1000;  // per inspect_events call
    static constexpr auto json_replace = nlohmann::json::error_handler_t::replace;
    MemoryPolicy memory_;
    std::optional<Capture> capture_;  // taken, waiting for its events to be stored
    std::size_t since_capture_events_ = 0;
    std::size_t since_capture_bytes_ = 0;
    std::size_t saved_position_ = 0;     // of the last snapshot saved or restored from
    std::size_t since_saved_bytes_ = 0;
    std::string last_restored_id_;
    std::optional<LatestSnapshot> latest_snapshot_;
    SnapshotStatistics snapshot_statistics_;
    std::map<std::string, CatchUp, std::less<>> catching_up_;  // users reading old events from the store
    std::uint64_t catch_up_serial_ = 0;
    std::size_t captures_aside_ = 0;  // handed to run_aside, not back yet
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // lets a late journal callback see the domain is gone
};

}  // namespace detail
}  // namespace krmx

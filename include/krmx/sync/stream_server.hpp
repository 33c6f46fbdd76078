#pragma once
// StreamServer<State>: the authoritative end of one domain's stream (PROTOCOL.md, section 2). The seed's
// `registerStream(server, 'my-claimable-counter', model)`:
//
//   krmx::StreamHost host{transport};
//   krmx::StreamServer counter{host, "my-claimable-counter", counter::model()};
//
// - On link: the user gets the history (`stream/history` pages that each fit the host's message limit,
//   or one `stream/append` per event with `history_as_appends`, which is what the JavaScript Krmx clients
//   understand), unless `history_on_link` is off.
// - On `stream/resync` {position: n} from user U: U gets the history from n - 1 (one event it has, so
//   that it can check it follows the same stream) in `stream/history` pages; from 0 when n is past the
//   end (U holds events this stream does not: it must rebuild).
// - On `stream/append` from user U: U is the dispatcher, whatever the message says. Accepted: stored (when
//   `persist` is set), then `stream/append` with position, dispatcher and the echoed id to every linked user.
//   Refused: `stream/invalidate` with the reason to U only.
// - The event is re-sent as the exact text it arrived as (key order, number spelling), in the broadcast and
//   in every later history: JavaScript clients match their optimistic events on the serialized text.
// - Server code dispatches its own events with any dispatcher name (krmx::server_dispatcher, "<server>").
//   That name and every name server code has dispatched with are reserved: a user who links under one
//   of them cannot append (on any transport), so nobody can dispatch as the server.
// - With `persist_batch` (pipelined durability, DESIGN.md principle 5): an accepted event is applied at once
//   (later events are validated against it) but confirmed to nobody, not even its sender, and left out of
//   histories, until the commit that holds it succeeded. One commit is in flight at a time; the events
//   accepted meanwhile wait and go together in the next one. A failed commit takes back every event of its
//   batch (state and log back to the last commit), each sender gets `stream/invalidate` "event not stored:
//   <why>", and the events that were waiting behind the batch are dispatched again on the restored state
//   (confirmed later, or refused with the model's reason if they only held on top of the lost ones).
// - Limits: an event may be at most `max_event_bytes` long and the history at most `max_history_bytes`
//   (event texts and dispatchers); past either the event is refused with a reason ("event too large",
//   "stream is full"). Every accepted event fits one message of the host's `max_message_bytes`, in a
//   broadcast and in a history page.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
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
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/stream/stream_model.hpp"
#include "krmx/sync/messages.hpp"
#include "krmx/sync/stream_host.hpp"

namespace krmx {

/// Called with every accepted event before anyone sees it confirmed; throw to refuse the event (it is then
/// undone and the sender gets an invalidate "event not stored: <what>"). See krmx/sync/durable.hpp for
/// one that stores into an EventStore.
using PersistHook =
    std::function<void(std::size_t position, std::string_view dispatcher, std::string_view event_text)>;

/// One accepted event handed to a PersistBatchHook. The views are valid during the hook's call only.
struct PersistedEvent {
    std::size_t position = 0;
    std::string_view dispatcher;
    std::string_view event_text;
};

/// Says how a batch commit ended: no error means committed. Call it once, on the thread that owns the
/// StreamServer (it touches the server); calls after the first, or after the server is gone, do nothing.
using PersistDone = std::function<void(std::optional<std::string> error)>;

/// Pipelined durability: called with a batch of accepted events (dense positions, in order, the first one
/// right after the last committed event) to commit in one go, e.g. on a writer thread; it must call `done`
/// when the commit ended (from the hook itself is fine). Throwing from the hook fails the batch. See
/// krmx/sync/durable.hpp (persist_async_to) for one that appends to an EventStore on its own thread.
using PersistBatchHook = std::function<void(std::span<const PersistedEvent> batch, PersistDone done)>;

struct StreamServerOptions {
    /// Send the history as one `stream/append` per event (JavaScript Krmx clients) instead of
    /// `stream/history`.
    bool history_as_appends = false;
    /// Send the history to every user that links. Off: only to clients that ask (`stream/resync`, which
    /// krmx::StreamClient does with `request_history`), so that a relinking client gets only what it missed.
    bool history_on_link = true;
    /// The longest event text accepted, in bytes. Must leave room for the envelope within the host's
    /// max_message_bytes (checked at construction).
    std::size_t max_event_bytes = std::size_t{256} << 10;
    /// The most the history may hold in memory (event texts and dispatchers), in bytes; then the stream
    /// is full and refuses further events.
    std::size_t max_history_bytes = std::size_t{256} << 20;
    /// Durability: see PersistHook. Empty: the stream lives in memory only.
    PersistHook persist = {};
    /// Pipelined durability instead (not both): see PersistBatchHook and the notes at the top.
    PersistBatchHook persist_batch = {};
};

/// Per-domain counters. Never reset.
struct StreamServerStatistics {
    std::uint64_t accepted = 0;         ///< events appended (from users and from server code)
    std::uint64_t unknown_type = 0;     ///< refused: no handler for the event's type
    std::uint64_t invalid_payload = 0;  ///< refused: the payload does not fit the handler's payload type
    std::uint64_t malformed = 0;   ///< refused: no event, an event that is not `{"type":string,..}`, a bad id
    std::uint64_t rejected = 0;    ///< refused by a guard or handler
    std::uint64_t failed = 0;      ///< refused: a handler threw something else
    std::uint64_t not_stored = 0;  ///< accepted by the model, refused because `persist` failed
    std::uint64_t too_large = 0;   ///< refused: over max_event_bytes, or the history is full
    std::uint64_t reserved_name = 0;  ///< refused: a user named like the server (or its dispatchers)
    std::uint64_t resyncs = 0;        ///< `stream/resync` requests answered
    std::uint64_t invalidates_sent = 0;
    std::uint64_t dropped = 0;  ///< refused appends without a readable id: nothing to answer
    std::uint64_t histories_sent = 0;
    std::uint64_t commits = 0;         ///< batches committed (persist_batch)
    std::uint64_t failed_commits = 0;  ///< batches taken back because their commit failed (persist_batch)
    std::uint64_t redispatched =
        0;  ///< events dispatched again after a failed commit before them (persist_batch)

    [[nodiscard]] std::uint64_t refused() const noexcept {
        return unknown_type + invalid_payload + malformed + rejected + failed + not_stored + too_large +
               reserved_name;
    }
};

template <class State>
class StreamServer final : private detail::StreamDomain {
  public:
    using state_type = State;

    StreamServer(StreamHost& host, std::string domain, const StreamModel<State>& model,
                 StreamServerOptions options = {})
        : host_(host), domain_(std::move(domain)), options_(std::move(options)), stream_(model) {
        if (detail::event_message_bytes(domain_, {}, options_.max_event_bytes) + 1024 >
            host_.options().max_message_bytes) {
            throw std::invalid_argument("krmx::StreamServer '" + domain_ + "': max_event_bytes (" +
                                        std::to_string(options_.max_event_bytes) +
                                        ") leaves no room for the envelope within the host's max_message_bytes (" +
                                        std::to_string(host_.options().max_message_bytes) + ")");
        }
        if (options_.persist && options_.persist_batch) {
            throw std::invalid_argument("krmx::StreamServer '" + domain_ +
                                        "': set persist or persist_batch, not both");
        }
        reserved_.emplace(server_dispatcher);
        // Persisting is the stream's journal: it runs after the event is applied and before anyone is
        // told, and a failure makes the stream take the event back (no rebuild of the whole log).
        stream_.set_journal([this](const LogEntry& entry) {
            if (!options_.persist || restoring_) return;
            try {
                options_.persist(entry.position(), entry.dispatcher(), journal_text_);
            } catch (...) {
                journal_failed_ = true;
                throw;
            }
        });
        host_.attach(domain_, *this);
    }
    StreamServer(const StreamServer&) = delete;
    StreamServer& operator=(const StreamServer&) = delete;
    ~StreamServer() override { host_.detach(domain_); }

    /// Server code's own event, e.g. `dispatch(krmx::server_dispatcher, round::end())`; broadcast when
    /// accepted. It takes the same path as a user's event from its wire text, so server code is held to
    /// the same grammar and limits (a NaN in a double payload, written as null, is refused here rather than
    /// by every client). The dispatcher name becomes reserved.
    template <class P>
    DispatchResult dispatch(std::string_view dispatcher, const TypedEvent<P>& event) {
        return dispatch_text(dispatcher, detail::event_text(event.to_json()));
    }
    DispatchResult dispatch(std::string_view dispatcher, const nlohmann::json& event) {
        return dispatch_text(dispatcher, detail::event_text(event));
    }
    /// The same from JSON text, which is re-sent exactly as given. With persist_batch, an accepted result
    /// means applied, not yet stored: the broadcast comes after the commit, and a failed commit takes the
    /// event back (counted in `not_stored`) or dispatches it again at another position.
    DispatchResult dispatch_text(std::string_view dispatcher, std::string_view event_text) {
        if (reserved_.find(dispatcher) == reserved_.end()) reserved_.emplace(dispatcher);
        return submit(dispatcher, event_text, std::nullopt, false,
                      [&] { return stream_.dispatch_text(dispatcher, event_text); });
    }

    /// Loads an event stored earlier (on start, before users link): applied and kept for the history,
    /// but neither persisted again nor broadcast. A stored event the model refuses throws krmx::ModelError:
    /// the stored log is the truth, and skipping an event would rewrite history. Throws std::logic_error
    /// while events wait for their commit (persist_batch).
    void restore(std::string_view dispatcher, std::string_view event_text) {
        if (!pending_.empty()) {
            throw std::logic_error("krmx::StreamServer '" + domain_ +
                                   "': restore while events wait for their commit");
        }
        committed_state_fresh_ = false;
        restoring_ = true;
        auto result = stream_.dispatch_text(dispatcher, event_text);
        restoring_ = false;
        if (!result) {
            throw ModelError("krmx::StreamServer '" + domain_ + "': stored event " +
                             std::to_string(events_.size()) + " is refused by the model (" +
                             std::string{result.reason()} + ")");
        }
        events_.emplace_back(event_text);
        history_bytes_ += event_text.size() + dispatcher.size();
    }

    /// Sends the stream from `from` to a linked user (done on every link with `history_on_link`).
    /// Only confirmed events go out: none that waits for its commit.
    void send_history(std::string_view user, std::size_t from = 0) {
        ++statistics_.histories_sent;
        const auto at = [this](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{stream_.log()[i].dispatcher(), events_[i]};
        };
        const std::size_t end = confirmed_size();
        if (options_.history_as_appends) {
            for (std::size_t i = from; i < end; ++i) {
                host_.send(user, detail::append_message(domain_, at(i).first, at(i).second, i, std::nullopt));
            }
            return;
        }
        detail::history_pages(domain_, from, end, host_.options().max_message_bytes, at,
                              [&](std::string page) { host_.send(user, std::move(page)); });
    }

    /// The state after every accepted event, including those that wait for their commit (persist_batch).
    [[nodiscard]] const State& state() const noexcept { return stream_.state(); }
    [[nodiscard]] const Stream<State>& stream() const noexcept { return stream_; }
    /// Accepted events, including those that wait for their commit (persist_batch).
    [[nodiscard]] std::size_t size() const noexcept { return stream_.size(); }
    /// Events confirmed to users (broadcast, in histories): all but those that wait for their commit.
    [[nodiscard]] std::size_t confirmed_size() const noexcept { return events_.size() - pending_.size(); }
    /// Accepted events that wait for their commit, the batch in flight included (persist_batch).
    [[nodiscard]] std::size_t uncommitted() const noexcept { return pending_.size(); }
    /// Whether a batch commit is in flight (persist_batch).
    [[nodiscard]] bool committing() const noexcept { return commit_running_; }
    /// The event at `position` as the text it arrived as (and is re-sent as).
    [[nodiscard]] std::string_view event_text(std::size_t position) const { return events_.at(position); }
    [[nodiscard]] const std::string& domain() const noexcept { return domain_; }
    [[nodiscard]] const StreamServerStatistics& statistics() const noexcept { return statistics_; }
    [[nodiscard]] const StreamServerOptions& options() const noexcept { return options_; }

  private:
    void user_linked(std::string_view user) override {
        if (options_.history_on_link) send_history(user);
    }

    void resync_from(std::string_view user, const std::vector<detail::JsonMember>& payload) override {
        const auto* position_member = detail::find_member(payload, "position");
        const auto position = position_member ? detail::raw_unsigned(position_member->value) : std::nullopt;
        if (!position) {
            ++statistics_.malformed;
            ++statistics_.dropped;
            return;
        }
        ++statistics_.resyncs;
        // One event the client has goes along, so that it can check that it follows this very stream.
        const std::size_t end = confirmed_size();
        const std::size_t from = *position > end ? 0 : (*position > 0 ? *position - 1 : 0);
        // history_as_appends is for clients that know no resync; those that ask read pages.
        const auto at = [this](std::size_t i) {
            return std::pair<std::string_view, std::string_view>{stream_.log()[i].dispatcher(), events_[i]};
        };
        detail::history_pages(domain_, from, end, host_.options().max_message_bytes, at,
                              [&](std::string page) { host_.send(user, std::move(page)); });
    }
    void user_unlinked(std::string_view) override {}

    void append_from(std::string_view user, const std::vector<detail::JsonMember>& payload) override {
        std::optional<std::uint64_t> id;
        if (const auto* id_member = detail::find_member(payload, "id")) {
            id = detail::raw_unsigned(id_member->value);
            if (!id) {  // an id we cannot echo is no id at all: the client could match no answer
                ++statistics_.malformed;
                ++statistics_.dropped;
                return;
            }
        }
        // The payload's `dispatcher` is ignored on purpose: the sender is the dispatcher.
        const auto* event = detail::find_member(payload, "event");
        if (reserved_.find(user) != reserved_.end()) {
            ++statistics_.reserved_name;
            refuse_to(user, id, event ? event->value : std::string_view{},
                      DispatchResult{Outcome::rejected, Reason{"the name '" + std::string{user} + "' is reserved for the server"}});
            return;
        }
        if (!event) {
            ++statistics_.malformed;
            refuse_to(user, id, {}, DispatchResult{Outcome::malformed, "stream/append without an event"});
            return;
        }
        const auto result =
            submit(user, event->value, id, true, [&] { return stream_.dispatch_text(user, event->value); });
        if (!result) refuse_to(user, id, event->value, result);
    }

    void refuse_to(std::string_view user, std::optional<std::uint64_t> id, std::string_view raw_event,
                   const DispatchResult& result) {
        ++statistics_.invalidates_sent;
        host_.send(user, detail::invalidate_message(domain_, id, raw_event, result.reason()));
    }

    // Dispatches through the stream (whose journal persists), then keeps the text and tells everyone; with
    // persist_batch, queues the event for the next commit instead.
    template <class Dispatch>
    DispatchResult submit(std::string_view dispatcher, std::string_view text, std::optional<std::uint64_t> id,
                          bool from_user, Dispatch&& dispatch) {
        if (auto refusal = over_limits(dispatcher, text)) {
            ++statistics_.too_large;
            return *refusal;
        }
        if (options_.persist_batch && pending_.empty() && !committed_state_fresh_) {
            // Nothing waits: the current state is the committed one, which a failed commit returns to.
            committed_state_ = stream_.state();
            committed_state_fresh_ = true;
        }
        journal_text_ = text;
        journal_failed_ = false;
        auto result = dispatch();
        journal_text_ = {};
        if (!result) {
            if (journal_failed_) {
                ++statistics_.not_stored;
                return result;
            }
            return count(std::move(result));
        }
        const std::size_t position = *result.position();
        events_.emplace_back(text);
        history_bytes_ += text.size() + dispatcher.size();
        if (options_.persist_batch) {
            pending_.push_back(Pending{id, from_user});
            if (!commit_running_ && !redispatching_) start_commits();
            return result;
        }
        ++statistics_.accepted;
        host_.broadcast(detail::append_message(domain_, dispatcher, events_.back(), position, id));
        return result;
    }

    // ---- pipelined durability (persist_batch) ----

    struct Pending {
        std::optional<std::uint64_t> id;
        bool from_user = false;  // server code's events have nobody to tell when they are taken back
    };

    // Hands every waiting event to the hook as one batch; again as long as the hook completes at once.
    void start_commits() {
        while (!commit_running_ && !pending_.empty()) {
            const std::size_t first = confirmed_size();
            in_flight_ = pending_.size();
            batch_end_state_ = stream_.state();
            batch_.clear();
            for (std::size_t i = first; i < events_.size(); ++i) {
                batch_.push_back(PersistedEvent{i, stream_.log()[i].dispatcher(), events_[i]});
            }
            commit_running_ = true;
            const std::uint64_t serial = ++commit_serial_;
            completed_in_hook_.reset();
            in_hook_ = true;
            PersistDone done = [this, alive = std::weak_ptr<int>(alive_),
                                serial](std::optional<std::string> error) {
                if (alive.expired() || !commit_running_ || serial != commit_serial_) return;
                if (in_hook_) {
                    if (!completed_in_hook_) completed_in_hook_ = std::move(error);
                    return;
                }
                finish_commit(std::move(error));
                start_commits();
            };
            try {
                options_.persist_batch(std::span<const PersistedEvent>{batch_}, std::move(done));
            } catch (const std::exception& e) {
                if (!completed_in_hook_) completed_in_hook_ = std::optional<std::string>{e.what()};
            } catch (...) {
                if (!completed_in_hook_) completed_in_hook_ = std::optional<std::string>{"the hook failed"};
            }
            in_hook_ = false;
            batch_.clear();
            if (!completed_in_hook_) return;  // in flight: `done` comes later
            auto error = std::move(*completed_in_hook_);
            completed_in_hook_.reset();
            finish_commit(std::move(error));
        }
    }

    void finish_commit(std::optional<std::string> error) {
        commit_running_ = false;
        const std::size_t count = in_flight_;
        in_flight_ = 0;
        const std::size_t first = confirmed_size();
        if (!error) {
            ++statistics_.commits;
            committed_state_ = std::move(*batch_end_state_);
            batch_end_state_.reset();
            for (std::size_t i = 0; i < count; ++i) {
                const std::size_t position = first + i;
                const auto id = pending_.front().id;
                pending_.pop_front();
                ++statistics_.accepted;
                host_.broadcast(detail::append_message(domain_, stream_.log()[position].dispatcher(),
                                                       events_[position], position, id));
            }
            return;
        }
        ++statistics_.failed_commits;
        batch_end_state_.reset();
        const DispatchResult refusal{Outcome::failed, Reason{"event not stored: " + *error}};
        struct Retry {
            std::string dispatcher;
            std::string text;
            Pending pending;
        };
        std::vector<Retry> retries;
        for (std::size_t position = first; position < events_.size(); ++position) {
            history_bytes_ -= events_[position].size() + stream_.log()[position].dispatcher().size();
        }
        for (std::size_t i = 0; i < pending_.size(); ++i) {
            const std::size_t position = first + i;
            const auto dispatcher = stream_.log()[position].dispatcher();
            if (i < count) {
                ++statistics_.not_stored;
                if (pending_[i].from_user) refuse_to(dispatcher, pending_[i].id, events_[position], refusal);
            } else {
                retries.push_back(Retry{std::string{dispatcher}, std::move(events_[position]), pending_[i]});
            }
        }
        // Back to the last commit: the state kept then, the log and the texts cut there.
        stream_.take_back(first, *committed_state_);
        events_.resize(first);
        pending_.clear();
        // The waiting events were validated on top of the lost ones: judge them again, in order.
        redispatching_ = true;
        for (auto& retry : retries) {
            ++statistics_.redispatched;
            const auto result =
                submit(retry.dispatcher, retry.text, retry.pending.id, retry.pending.from_user,
                       [&] { return stream_.dispatch_text(retry.dispatcher, retry.text); });
            if (!result && retry.pending.from_user)
                refuse_to(retry.dispatcher, retry.pending.id, retry.text, result);
        }
        redispatching_ = false;
    }

    std::optional<DispatchResult> over_limits(std::string_view dispatcher, std::string_view text) const {
        if (text.size() > options_.max_event_bytes ||
            detail::event_message_bytes(domain_, dispatcher, text.size()) > host_.options().max_message_bytes) {
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

    StreamHost& host_;
    std::string domain_;
    StreamServerOptions options_;
    Stream<State> stream_;
    std::vector<std::string> events_;  // parallel to the log: each event's text as received
    std::string_view journal_text_;    // the text of the event being dispatched, for the journal
    bool journal_failed_ = false;
    bool restoring_ = false;
    std::size_t history_bytes_ = 0;
    std::set<std::string, std::less<>> reserved_;  // dispatcher names users may not link under
    StreamServerStatistics statistics_;
    // persist_batch: the events after the last commit (the batch in flight first, then those waiting).
    std::deque<Pending> pending_;
    std::size_t in_flight_ = 0;
    bool commit_running_ = false;
    std::uint64_t commit_serial_ = 0;
    bool in_hook_ = false;
    bool redispatching_ = false;
    std::optional<std::optional<std::string>> completed_in_hook_;
    std::optional<State> committed_state_;  // the state at the last commit, when fresh
    bool committed_state_fresh_ = false;
    std::optional<State> batch_end_state_;  // the state after the batch in flight
    std::vector<PersistedEvent> batch_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // lets a late `done` see the server is gone
};

template <class State>
StreamServer(StreamHost&, std::string, const StreamModel<State>&, StreamServerOptions = {})
    -> StreamServer<State>;

}  // namespace krmx

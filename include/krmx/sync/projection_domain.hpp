#pragma once
// krmx::ProjectionDomain<State, View>: the server's authoritative end of one domain whose model is a
// ProjectionModel: hidden information. Users never see the state or its events; each sees its own view.
//
//   krmx::net::WebSocketServer server{{.port = 8082}};
//   krmx::ProjectionDomain cards{server, "cards", cards::model(), {.durability = krmx::durable(store)}};
//
// What it does (docs/protocol.md, section 3, has the messages):
// - A user that starts hearing the domain (it links, or is admitted while linked) gets `projection/set` with
//   its whole view.
// - `projection/action` {action, optimisticId?} from user U: U is the dispatcher. The action is an event of
//   the domain's private stream, with everything a StreamDomain's events have: limits, reserved names, the
//   audience, guards and refusals, and durability: a durable domain stores its accepted actions before
//   anyone sees their effect, and restores its state from them after a restart (views are computed again,
//   so a view function may change between versions; the actions may not).
//   Accepted: every user that hears the domain gets `projection/delta` with the jsondiffpatch delta of its
//   view, if it changed; U's carries U's optimisticId, and U gets one even when its view did not change
//   (with the delta that changes nothing, krmx::no_change_delta). Refused: U gets `projection/invalidate`
//   with the optimisticId and the reason (an action without optimisticId is refused unanswered: @krmx/state
//   sends none when it applied nothing).
// - Each view is computed once per user and compared with what the user holds; a delta is computed once
//   per distinct (old, new) pair, so that spectators and team mates whose views changed alike share it, and
//   the delta of a member of the view (a table all see) once per distinct change of that member. Equal
//   deltas are one message: one frame for all their connections.
// - A delta that would not fit in a message is replaced by `projection/set`; a view that does not fit either
//   is not sent (counted in views_too_large; the user keeps its old view, and the next change that fits is
//   a delta from it). A view function that throws skips that user's update (view_failures), nobody else's.
// - Audience, admit() and dismiss() as in StreamDomain; a dismissed user gets `projection/dismissed`.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_tape.hpp"
#include "krmx/core/detail/tape_writer.hpp"
#include "krmx/core/json_delta.hpp"
#include "krmx/core/message.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/shared_text.hpp"
#include "krmx/stream/projection_model.hpp"
#include "krmx/stream/stream.hpp"
#include "krmx/sync/audience.hpp"
#include "krmx/sync/detail/domain_core.hpp"
#include "krmx/sync/domain_host.hpp"
#include "krmx/sync/durability.hpp"
#include "krmx/sync/projection_messages.hpp"

namespace krmx {

struct ProjectionDomainOptions {
    /// The longest action text accepted, in bytes (as StreamDomainOptions::max_event_bytes).
    std::size_t max_action_bytes = std::size_t{256} << 10;
    /// In-memory domains: the most the private log may hold (action texts and dispatchers), in bytes. A
    /// durable domain keeps a tail instead (DurableOptions::memory) and never fills up.
    std::size_t max_history_bytes = std::size_t{256} << 20;
    /// Where accepted actions are stored before anyone sees their effect: `krmx::durable(store)`.
    Durability durability = {};
    /// Who sees the domain and may act: everyone linked, or only admitted members.
    Audience audience = Audience::everyone;
};

template <class State, class View>
class ProjectionDomain final : private detail::DomainCore<State> {
    using Core = detail::DomainCore<State>;
    using Waiting = typename Core::Waiting;

  public:
    using state_type = State;
    using view_type = View;

    /// Attaches to `host`; a durable domain restores its state from its store first (throws
    /// krmx::ModelError when the model refuses a stored action, StoreError when the store fails).
    ProjectionDomain(DomainHost& host, std::string name, const ProjectionModel<State, View>& model,
                     ProjectionDomainOptions options = {})
        : Core(host, std::move(name), model.actions(),
               {"krmx::ProjectionDomain", options.max_action_bytes, options.max_history_bytes, options.durability,
                options.audience}),
          model_(model),
          options_(std::move(options)) {
        if (this->durable()) {
            // Views are of confirmed actions only: a second stream follows the commits, from the restored
            // state (every restored action is stored).
            shown_.emplace(model_.actions());
            shown_->restore_at(this->state(), this->confirmed_size());
        }
    }
    /// The same on the host of `server` (krmx::net::WebSocketServer, krmx::testing::Hub).
    template <HasDomainHost Server>
    ProjectionDomain(Server& server, std::string name, const ProjectionModel<State, View>& model,
                     ProjectionDomainOptions options = {})
        : ProjectionDomain(server.host(), std::move(name), model, std::move(options)) {}

    // Server code's own actions: dispatch(dispatcher, typed action | json), dispatch_text(dispatcher, text);
    // the audience: admit(user), dismiss(user), hears(user), members(); the private stream: state(),
    // stream(), size(), confirmed_size(), uncommitted(), committing(), durable(), event_text(position),
    // name(), statistics(). See detail::DomainCore.
    using Core::admit;
    using Core::committing;
    using Core::confirmed_size;
    using Core::dismiss;
    using Core::dispatch;
    using Core::dispatch_text;
    using Core::durable;
    using Core::event_text;
    using Core::hears;
    using Core::held_from;
    using Core::members;
    using Core::name;
    using Core::size;
    using Core::snapshot_statistics;
    using Core::state;
    using Core::state_at;
    using Core::statistics;
    using Core::stream;
    using Core::uncommitted;

    /// The state users' views show: after every confirmed action (state() may be ahead of it by actions
    /// that wait for their commit).
    [[nodiscard]] const State& shown_state() const noexcept { return shown_ ? shown_->state() : state(); }
    /// Its report with the projection's counters (krmx::net::Metrics exports them as krmx_projection_*).
    [[nodiscard]] DomainReport report() const override {
        auto r = Core::report();
        r.projection = projection_statistics_;
        return r;
    }
    /// The view `user` holds (the last one sent to it), while it hears the domain.
    [[nodiscard]] std::optional<nlohmann::json> view_of(std::string_view user) const {
        const auto it = viewers_.find(user);
        if (it == viewers_.end()) return std::nullopt;
        return it->second.view.value();
    }
    [[nodiscard]] const ProjectionStatistics& projection_statistics() const noexcept { return projection_statistics_; }
    [[nodiscard]] const ProjectionModel<State, View>& model() const noexcept { return model_; }
    [[nodiscard]] const ProjectionDomainOptions& options() const noexcept { return options_; }

  private:
    // What a user holds is kept as a tape, not a tree: by the next action a tree has gone cold in the cache
    // and costs a miss per node to diff (detail/json_tape.hpp).
    struct Viewer {
        detail::JsonTape view;  // what the user holds
        std::size_t hash = 0;   // of view
    };
    // ---- hooks -----------------------------------------------------------------------------------------

    void start_hearing(std::string_view user, const LinkedUser&) override {
        auto view = compute_view(user);
        if (!view) return;
        auto message = detail::projection_set_message(this->name(), view->text());
        if (message.size() > this->host().options().max_message_bytes) {
            ++projection_statistics_.views_too_large;
            return;
        }
        ++projection_statistics_.sets_sent;
        this->host().send(user, std::move(message));
        const auto hash = view->hash();
        viewers_.insert_or_assign(std::string{user}, Viewer{std::move(*view), hash});
    }

    void stop_hearing(std::string_view user, bool dismissed) override {
        if (const auto it = viewers_.find(user); it != viewers_.end()) viewers_.erase(it);
        if (dismissed) this->host().send(user, detail::projection_dismissed_message(this->name()));
    }

    void receive(std::string_view user, const Message& message) override {
        if (message.type() != projection_message::action) {
            // A stream client on a projection domain: its events are private here.
            if (message.type() == stream_message::append) {
                const auto* id_member = message.field("id");
                const auto id = id_member ? detail::raw_unsigned(id_member->value) : std::nullopt;
                ++this->counters().malformed;
                if (!id) {
                    ++this->counters().dropped;
                    return;
                }
                ++this->counters().invalidates_sent;
                this->host().send(user, detail::invalidate_message(this->name(), id, {},
                                                                   "domain " + detail::quoted(this->name()) +
                                                                       " is a projection: send projection/action"));
                return;
            }
            ++this->counters().malformed;
            ++this->counters().dropped;
            return;
        }
        act(user, message);
    }

    // The path of a user's `projection/action`.
    void act(std::string_view user, const Message& message) {
        // 1. The optimisticId is echoed in the answer: one that is no short string is no id at all.
        std::optional<std::uint64_t> id;
        if (const auto* id_member = message.field("optimisticId"); id_member && id_member->value != "null") {
            auto optimistic = detail::optimistic_id(id_member->value);
            if (!optimistic) {
                ++this->counters().malformed;
                ++this->counters().dropped;
                return;
            }
            id = next_id_++;
            optimistic_ids_.emplace(*id, std::move(*optimistic));
        }
        const auto* action = message.field("action");
        const auto result = this->accept_from_user(user, message, action, id, "projection/action without an action");
        if (!result) refuse(user, id, {}, result);
    }

    void refuse(std::string_view user, std::optional<std::uint64_t> id, std::string_view,
                const DispatchResult& result) override {
        auto optimistic = take_optimistic_id(id);
        if (!optimistic) {
            ++projection_statistics_.unanswered;
            return;
        }
        ++this->counters().invalidates_sent;
        this->host().send(user, detail::projection_invalidate_message(this->name(), *optimistic, result.reason()));
    }

    // Confirmed actions: every viewer gets the delta of its view over the whole batch, and each sender its
    // optimisticIds (the first with the delta, the others with no change).
    void confirmed(std::size_t first, std::span<const Waiting> batch) override {
        if (shown_) {
            for (std::size_t i = 0; i < batch.size(); ++i) show(first + i);
        }
        std::map<std::string_view, std::vector<std::string>, std::less<>> released;  // user -> optimisticIds
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (auto optimistic = take_optimistic_id(batch[i].id)) {
                released[this->stream().log()[first + i].dispatcher()].push_back(std::move(*optimistic));
            }
        }
        // Deltas computed in this batch, found by the hashes of the old and the new view and then compared:
        // users whose views changed alike (spectators, team mates) share one.
        struct Shared {
            const detail::JsonTape* from;
            const detail::JsonTape* to;
            std::string delta;
            SharedText message = {};  // the delta message without an optimisticId, made once for all
        };
        std::vector<Shared> shared;
        std::unordered_multimap<std::size_t, std::size_t> shared_by_hash;
        // Equal deltas from different views (the players but the sender, when only public parts changed) are
        // one message, one frame shared by all the connections.
        std::unordered_map<std::string, SharedText> messages;
        // And parts of views that changed alike (a table all see, beside hands of their own) are diffed once.
        detail::TapeDiffCache member_deltas;
        // New views wait here until every user was served: shared deltas point at the old ones.
        std::vector<std::pair<Viewer*, Viewer>> updates;
        updates.reserve(viewers_.size());
        const auto max_bytes = this->host().options().max_message_bytes;
        for (auto& [user, viewer] : viewers_) {
            const auto ids = released.find(user);
            std::span<const std::string> own;
            if (ids != released.end()) own = ids->second;
            std::size_t next_own = 0;
            const auto next_id = [&]() -> std::optional<std::string_view> {
                if (next_own < own.size()) return std::string_view{own[next_own++]};
                return std::nullopt;
            };
            if (auto view = compute_view(user, viewer.view.bytes().size())) {
                const auto hash = view->hash();
                if (hash != viewer.hash || *view != viewer.view) {
                    auto& update = updates.emplace_back(&viewer, Viewer{std::move(*view), hash});
                    const auto& next = update.second.view;
                    const auto key = viewer.hash * 31 + hash;
                    Shared* found = nullptr;
                    for (auto [it, end] = shared_by_hash.equal_range(key); it != end && !found; ++it) {
                        auto& candidate = shared[it->second];
                        if (*candidate.from == viewer.view && *candidate.to == next) found = &candidate;
                    }
                    if (!found) {
                        ++projection_statistics_.deltas_computed;
                        auto delta = detail::tape_diff(viewer.view, next, &member_deltas);
                        shared.push_back(Shared{&viewer.view, &next,
                                                delta ? std::move(*delta) : std::string{no_change_delta}});  // equal by value (1, 1.0)
                        shared_by_hash.emplace(key, shared.size() - 1);
                        found = &shared.back();
                    }
                    const auto id = next_id();
                    if (!id && !found->message) {
                        auto& message = messages[found->delta];
                        if (!message) message = share_text(detail::projection_delta_message(this->name(), found->delta, {}));
                        found->message = message;
                    }
                    auto message = id ? share_text(detail::projection_delta_message(this->name(), found->delta, id))
                                      : found->message;
                    if (message->size() <= max_bytes) {
                        ++projection_statistics_.deltas_sent;
                        this->host().send(user, message);
                    } else if (auto set = detail::projection_set_message(this->name(), next.text());
                               set.size() <= max_bytes) {
                        ++projection_statistics_.sets_sent;
                        this->host().send(user, std::move(set));
                        next_own = 0;  // a set drops the client's optimistic actions; release them all anyway
                    } else {
                        ++projection_statistics_.views_too_large;
                        update.first = nullptr;  // the user keeps the view it has (shared deltas may point at this one)
                        next_own = 0;
                    }
                }
            }
            while (const auto optimistic = next_id()) {
                ++projection_statistics_.deltas_sent;
                this->host().send(user, detail::projection_delta_message(this->name(), no_change_delta, optimistic));
            }
        }
        projection_statistics_.parts_reused += member_deltas.hits;
        for (auto& [viewer, next] : updates) {
            if (viewer) *viewer = std::move(next);
        }
    }

    // ---- views -----------------------------------------------------------------------------------------

    // `expected_bytes`: the size of the tape of the user's last view.
    std::optional<detail::JsonTape> compute_view(std::string_view user, std::size_t expected_bytes = 0) {
        ++projection_statistics_.views_computed;
        try {
            // Views of KRMX_DEFINE_VIEW types and standard containers are written without a JSON tree.
            detail::TapeWriter writer;
            writer.reserve(expected_bytes + 64);  // no growing piece by piece
            detail::tape_write(writer, model_.view(shown_state(), user));  // may throw std::length_error: 4 GiB
            return std::move(writer).tape();
        } catch (const std::exception& e) {
            ++projection_statistics_.view_failures;
            this->host().log().error("projection.view_failed", "a view function threw: that user's update was skipped",
                                     {{"domain", this->name()}, {"user", std::string{user}}, {"error", e.what()}});
        } catch (...) {
            ++projection_statistics_.view_failures;
        }
        return std::nullopt;
    }

    // The shown stream lets go of old actions with the private one.
    void forgot_before(std::size_t position, const State& state) override {
        if (shown_ && position >= shown_->log().base() && position <= shown_->size()) shown_->forget_before(position, state);
    }

    // Applies the confirmed action at `position` to the shown state (durable domains).
    void show(std::size_t position) {
        const auto result = shown_->dispatch_text(this->stream().log()[position].dispatcher(), this->event_text(position));
        if (!result) {
            throw ModelError("krmx::ProjectionDomain " + detail::quoted(this->name()) + ": action " +
                             std::to_string(position) + " was accepted but is refused on replay (" +
                             std::string{result.reason()} + "); handlers must be deterministic");
        }
    }

    std::optional<std::string> take_optimistic_id(std::optional<std::uint64_t> id) {
        if (!id) return std::nullopt;
        const auto it = optimistic_ids_.find(*id);
        if (it == optimistic_ids_.end()) return std::nullopt;
        auto optimistic = std::move(it->second);
        optimistic_ids_.erase(it);
        return optimistic;
    }

    ProjectionModel<State, View> model_;
    ProjectionDomainOptions options_;
    std::optional<Stream<State>> shown_;  // durable: the confirmed actions only
    std::map<std::string, Viewer, std::less<>> viewers_;  // linked users that hear the domain
    std::unordered_map<std::uint64_t, std::string> optimistic_ids_;  // waiting actions' optimisticIds
    std::uint64_t next_id_ = 0;
    ProjectionStatistics projection_statistics_;
};

template <class State, class View>
ProjectionDomain(DomainHost&, std::string, const ProjectionModel<State, View>&, ProjectionDomainOptions = {})
    -> ProjectionDomain<State, View>;
template <HasDomainHost Server, class State, class View>
ProjectionDomain(Server&, std::string, const ProjectionModel<State, View>&, ProjectionDomainOptions = {})
    -> ProjectionDomain<State, View>;

}  // namespace krmx

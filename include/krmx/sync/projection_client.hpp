#pragma once
// ProjectionClient<State, View>: the client end of one projection domain (docs/protocol.md, section 3), what
// @krmx/state's ProjectionClient is in JavaScript, with the session glue included:
//
//   krmx::ProjectionClient cards{transport, "cards", cards::model()};
//   cards.dispatch(cards::play(7));   // the optimistic handler applies at once; sent as projection/action
//   cards.view();                     // the optimistic view; confirmed_view() is the server's
//
// `projection/set` replaces the view (and drops pending actions, as @krmx/state does); `projection/delta`
// patches the confirmed view (json_patch, strict: a delta that does not fit is counted in bad_deltas and
// leaves the view as it was, out_of_sync() says so until the next set) and releases the pending action
// with its optimisticId; `projection/invalidate` drops that action (on_invalidated says why);
// `projection/dismissed` and every link and unlink forget the view and the pending actions. The
// optimistic view is the confirmed view with each pending action's optimistic handler applied, in order.
// Every action is sent with an optimisticId, also those without an optimistic handler, so that this
// client hears of every refusal. Messages it cannot use are counted and ignored; they never change the view.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/event_type.hpp"
#include "krmx/core/json_delta.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/core/subscription.hpp"
#include "krmx/stream/detail/decode.hpp"
#include "krmx/stream/projection_model.hpp"
#include "krmx/sync/detail/client_message.hpp"
#include "krmx/sync/projection_messages.hpp"
#include "krmx/sync/stream_messages.hpp"
#include "krmx/sync/transport.hpp"

namespace krmx {

struct ProjectionClientOptions {
    /// Messages longer than this are ignored unread (at least the server's max_message_bytes).
    std::size_t max_message_bytes = std::size_t{64} << 20;
};

/// Per-client counters. Never reset.
struct ProjectionClientStatistics {
    std::uint64_t sent = 0;         ///< own actions sent
    std::uint64_t sets = 0;         ///< `projection/set` applied
    std::uint64_t deltas = 0;       ///< `projection/delta` applied
    std::uint64_t invalidated = 0;  ///< own actions the server refused
    std::uint64_t bad_deltas = 0;   ///< deltas that do not fit the view, and views that are no View: not applied
    std::uint64_t ignored = 0;      ///< unusable messages for this domain, oversized or unparsable ones
    std::uint64_t dismissed = 0;    ///< `projection/dismissed`
};

/// The result of a client's dispatch: refused locally (then not sent), or sent with `optimistic_id`.
struct [[nodiscard]] ProjectionDispatch {
    DispatchResult result;
    std::optional<std::string> optimistic_id;  ///< set iff sent
    explicit operator bool() const noexcept { return optimistic_id.has_value(); }
};

template <class State, class View>
class ProjectionClient {
    static_assert(requires(const nlohmann::json& j) { j.get<View>(); },
                  "krmx::ProjectionClient<State, View>: the view arrives as JSON: give View a "
                  "`from_json(const nlohmann::json&, View&)` that ADL finds, or use nlohmann::json");

  public:
    using view_type = View;

    template <class Transport>
    ProjectionClient(Transport& transport, std::string domain, const ProjectionModel<State, View>& model,
                     ProjectionClientOptions options = {})
        : domain_(std::move(domain)), model_(model), options_(options) {
        static_assert(detail::check_client_transport<Transport>());
        send_ = [&transport](std::string text) { transport.send(std::move(text)); };
        subscriptions_[0] = transport.on_link([this](std::string_view user) { linked(user); });
        subscriptions_[1] = transport.on_unlink([this] { unlinked(); });
        subscriptions_[2] = transport.on_message([this](std::string_view text) { receive(text); });
    }
    ProjectionClient(const ProjectionClient&) = delete;
    ProjectionClient& operator=(const ProjectionClient&) = delete;

    /// Applies an own action to the view at once (when it has an optimistic handler) and sends it. Refused
    /// locally, and not sent, when the model does not know it, its payload does not fit, its optimistic
    /// handler refuses it, or there is no view yet (`failed` "no view yet": not linked, or not hearing).
    template <class P>
    ProjectionDispatch dispatch(const TypedEvent<P>& action) {
        return dispatch(action.to_json());
    }
    ProjectionDispatch dispatch(const nlohmann::json& action) {
        if (!confirmed_) return {DispatchResult{Outcome::failed, "no view yet"}, std::nullopt};
        detail::DecodedEvent decoded;
        if (auto result = detail::decode_event(*model_.actions().data(), action, decoded); !result) {
            return {std::move(result), std::nullopt};
        }
        Pending pending{"krmx-" + std::to_string(++next_id_), action};
        if (auto result = apply_optimistic(optimistic_, pending.action); !result) return {std::move(result), std::nullopt};
        ++statistics_.sent;
        send_(detail::projection_action_message(domain_, detail::event_text(action), pending.id));
        auto id = pending.id;
        pending_.push_back(std::move(pending));
        on_change_.emit(optimistic_);
        return {DispatchResult::accepted_at(0), std::move(id)};
    }

    /// Whether a view arrived (since the last link).
    [[nodiscard]] bool has_view() const noexcept { return confirmed_.has_value(); }
    /// The optimistic view: the confirmed one with pending actions applied (a default View before any).
    [[nodiscard]] const View& view() const noexcept { return optimistic_; }
    /// The view as the server last sent it (a default View before any).
    [[nodiscard]] const View& confirmed_view() const noexcept { return confirmed_view_; }
    /// The same as JSON, exactly as patched.
    [[nodiscard]] const nlohmann::json* confirmed_json() const noexcept { return confirmed_ ? &*confirmed_ : nullptr; }
    [[nodiscard]] std::size_t pending_count() const noexcept { return pending_.size(); }
    /// A delta did not fit the view: it no longer follows the server until the next `projection/set`.
    [[nodiscard]] bool out_of_sync() const noexcept { return out_of_sync_; }
    [[nodiscard]] bool linked() const noexcept { return linked_; }
    [[nodiscard]] const std::string& user() const noexcept { return user_; }
    [[nodiscard]] const std::string& domain() const noexcept { return domain_; }
    [[nodiscard]] const ProjectionClientStatistics& statistics() const noexcept { return statistics_; }

    /// `f(const View&)` after the optimistic view may have changed.
    template <class F>
    Subscription on_change(F&& f) {
        return on_change_.connect(std::forward<F>(f));
    }
    /// `f(std::string_view optimistic_id, const nlohmann::json& action, std::string_view reason)` for every
    /// own action the server refused.
    template <class F>
    Subscription on_invalidated(F&& f) {
        return on_invalidated_.connect(std::forward<F>(f));
    }

    /// The transport's callbacks; public so that a caller that drives a client by hand may call them.
    void linked(std::string_view user) {
        linked_ = true;
        user_ = std::string{user};
        forget();
    }
    void unlinked() {
        linked_ = false;
        forget();
    }
    void receive(std::string_view text) {
        const auto read =
            detail::read_client_message(text, options_.max_message_bytes, projection_message::prefix, domain_);
        if (read.kind != detail::ClientMessage::Kind::ours) {
            if (read.kind == detail::ClientMessage::Kind::unusable) ++statistics_.ignored;
            return;  // another protocol's or another domain's
        }
        const auto type_name = read.type();
        const auto* payload = &read.payload();
        if (type_name == projection_message::set) {
            receive_set(*payload);
        } else if (type_name == projection_message::delta) {
            receive_delta(*payload);
        } else if (type_name == projection_message::invalidate) {
            receive_invalidate(*payload);
        } else if (type_name == projection_message::dismissed) {
            ++statistics_.dismissed;
            forget();
        } else {
            ++statistics_.ignored;
        }
    }

  private:
    struct Pending {
        std::string id;
        nlohmann::json action;
    };

    void receive_set(const nlohmann::json& payload) {
        const auto projection = payload.find("projection");
        if (projection == payload.end()) {
            ++statistics_.ignored;
            return;
        }
        auto typed = to_view(*projection);
        if (!typed) return;
        ++statistics_.sets;
        confirmed_ = *projection;
        confirmed_view_ = std::move(*typed);
        out_of_sync_ = false;
        pending_.clear();  // as @krmx/state: a set replaces everything
        rebuild();
    }

    void receive_delta(const nlohmann::json& payload) {
        const auto delta = payload.find("delta");
        const auto id = optimistic_id_of(payload);
        if (delta == payload.end() || !confirmed_ || (payload.contains("optimisticId") && !id)) {
            ++statistics_.ignored;
            return;
        }
        if (!out_of_sync_) {
            auto next = *confirmed_;
            std::optional<View> typed;
            try {
                json_patch(next, *delta);
                typed = to_view(next);
            } catch (const std::invalid_argument&) {
                ++statistics_.bad_deltas;
            }
            if (typed) {
                ++statistics_.deltas;
                confirmed_ = std::move(next);
                confirmed_view_ = std::move(*typed);
            } else {
                out_of_sync_ = true;
            }
        }
        if (id) std::erase_if(pending_, [&](const Pending& p) { return p.id == *id; });
        rebuild();
    }

    void receive_invalidate(const nlohmann::json& payload) {
        const auto id = optimistic_id_of(payload);
        const auto it = id ? std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.id == *id; })
                           : pending_.end();
        if (it == pending_.end()) {
            ++statistics_.ignored;
            return;
        }
        ++statistics_.invalidated;
        const auto reason = payload.find("reason");
        const auto action = std::move(it->action);
        const auto invalidated_id = std::move(it->id);
        pending_.erase(it);
        rebuild();
        on_invalidated_.emit(std::string_view{invalidated_id}, action,
                             reason != payload.end() && reason->is_string()
                                 ? std::string_view{reason->template get_ref<const std::string&>()}
                                 : std::string_view{});
    }

    static std::optional<std::string> optimistic_id_of(const nlohmann::json& payload) {
        const auto id = payload.find("optimisticId");
        if (id == payload.end() || !id->is_string()) return std::nullopt;
        return id->template get<std::string>();
    }

    std::optional<View> to_view(const nlohmann::json& json) {
        try {
            return json.get<View>();
        } catch (const std::exception&) {
            ++statistics_.bad_deltas;
            return std::nullopt;
        }
    }

    // The action's optimistic handler on `view`, if it has one; refused: `view` is as it was.
    DispatchResult apply_optimistic(View& view, const nlohmann::json& action) {
        const auto& handlers = *model_.optimistic_handlers().data();
        detail::DecodedEvent decoded;
        if (!detail::decode_event(handlers, action, decoded)) return DispatchResult::accepted_at(0);  // none
        View next = view;
        auto status = (*handlers.handlers[decoded.index])(next, user_, decoded.payload.get());
        if (status.outcome != Outcome::accepted) return {status.outcome, std::move(status.reason)};
        view = std::move(next);
        return DispatchResult::accepted_at(0);
    }

    void rebuild() {
        optimistic_ = confirmed_view_;
        for (const auto& pending : pending_) (void)apply_optimistic(optimistic_, pending.action);
        on_change_.emit(optimistic_);
    }

    void forget() {
        confirmed_.reset();
        confirmed_view_ = View{};
        pending_.clear();
        out_of_sync_ = false;
        rebuild();
    }

    std::string domain_;
    ProjectionModel<State, View> model_;
    ProjectionClientOptions options_;
    std::function<void(std::string)> send_;
    bool linked_ = false;
    std::string user_;
    std::optional<nlohmann::json> confirmed_;
    View confirmed_view_{};
    View optimistic_{};
    bool out_of_sync_ = false;
    std::vector<Pending> pending_;
    std::uint64_t next_id_ = 0;
    ProjectionClientStatistics statistics_;
    detail::Signal<const View&> on_change_;
    detail::Signal<std::string_view, const nlohmann::json&, std::string_view> on_invalidated_;
    Subscription subscriptions_[3];
};

template <class Transport, class State, class View>
ProjectionClient(Transport&, std::string, const ProjectionModel<State, View>&, ProjectionClientOptions = {})
    -> ProjectionClient<State, View>;

}  // namespace krmx

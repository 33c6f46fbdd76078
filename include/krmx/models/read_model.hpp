#pragma once
// Read models: a name, a revision, a catalog and a reducer over a state (or a StreamModel's handlers), and
// the signals the framework sends the model's signal handler. A ReadModelRunner (read_model_runner.hpp)
// feeds a read model from an event store, with checkpoints.
//
// Signals, per run, in this order: where the run starts, `from_start` (the first event, with the initial
// state), `restored` (after the checkpoint the run loaded) or `resumed` (after where the runner's last run
// left its state; nothing is loaded); then the reducer gets each stored event, with `unknown_event`,
// `invalid_event` or `refused_event` in place of events the model cannot take; then `caught_up` once the
// end of the store is reached (catch_up and follow only). Skipped events are reported and counted, never
// silently dropped, and never stop the model.

#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "krmx/models/event_catalog.hpp"
#include "krmx/models/reducer.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

/// A framework signal or a skipped event, as the model's signal handler sees it.
struct ModelSignal {
    enum class Kind : std::uint8_t {
        from_start,     ///< the run starts from the first event, with the initial state
        restored,       ///< the run starts after `position`, from the checkpoint it loaded
        resumed,        ///< the run goes on after `position`, from the state the runner's last run left
        unknown_event,  ///< the event at `position` has a type the catalog does not hold; skipped
        invalid_event,  ///< the event at `position` did not decode (payload, upcaster); skipped
        refused_event,  ///< the model's handler refused the event at `position`; skipped
        caught_up,      ///< every stored event up to `position` is processed
    };
    Kind kind = Kind::from_start;
    Position position = 0;
    const RecordedEvent* record = nullptr;  ///< the skipped event, for the three *_event kinds
    std::string_view reason{};              ///< why it was skipped
};

[[nodiscard]] constexpr std::string_view to_string(ModelSignal::Kind kind) noexcept {
    switch (kind) {
        case ModelSignal::Kind::from_start:
            return "from_start";
        case ModelSignal::Kind::restored:
            return "restored";
        case ModelSignal::Kind::resumed:
            return "resumed";
        case ModelSignal::Kind::unknown_event:
            return "unknown_event";
        case ModelSignal::Kind::invalid_event:
            return "invalid_event";
        case ModelSignal::Kind::refused_event:
            return "refused_event";
        case ModelSignal::Kind::caught_up:
            return "caught_up";
    }
    return "?";
}

/// The definition of a read model. A value: copy it, share it, run it many times.
template <class State>
class ReadModel {
    static_assert(std::copy_constructible<State> && std::is_move_assignable_v<State>,
                  "krmx::ReadModel<State>: State must be copy constructible and move assignable");

  public:
    using state_type = State;

    ReadModel(std::string name, std::uint32_t revision, EventCatalog catalog, State initial = State{})
        : name_(std::move(name)),
          revision_(revision),
          catalog_(std::move(catalog)),
          initial_(std::move(initial)) {}

    /// A reducing read model over a StreamModel: stored events go through its handlers (one definition,
    /// used by the game server, the clients and this read model).
    static ReadModel reducing(std::string name, std::uint32_t revision, EventCatalog catalog,
                              const StreamModel<State>& model) {
        ReadModel m{std::move(name), revision, std::move(catalog), model.initial_state()};
        m.reducer_ = detail::reducer_from_model(model);
        return m;
    }

    /// The reducer: `(State&, const CatalogEvent&)`, `(const State&, const CatalogEvent&) -> State`, or
    /// `(const CatalogEvent&)` for a pure projection. Anything it throws fails the run (at-least-once).
    template <class F>
    ReadModel& reduce(F reducer) & {
        reducer_ = detail::make_reducer<State>(std::move(reducer));
        return *this;
    }
    template <class F>
    ReadModel&& reduce(F reducer) && {
        return std::move(reduce(std::move(reducer)));
    }
    /// `(State&, const ModelSignal&)` or `(const ModelSignal&)`: framework signals and skipped events.
    template <class F>
    ReadModel& on_signal(F handler) & {
        if constexpr (std::invocable<F&, State&, const ModelSignal&>) {
            on_signal_ = std::move(handler);
        } else {
            static_assert(std::invocable<F&, const ModelSignal&>,
                          "krmx::ReadModel::on_signal: the handler must be callable as (State&, const "
                          "krmx::ModelSignal&) or (const krmx::ModelSignal&)");
            on_signal_ = [h = std::move(handler)](State&, const ModelSignal& s) mutable {
                h(s);
            };
        }
        return *this;
    }
    template <class F>
    ReadModel&& on_signal(F handler) && {
        return std::move(on_signal(std::move(handler)));
    }
    /// Reads only the events that pass the filter (streams, types).
    ReadModel& filter(EventFilter filter) & {
        filter_ = std::move(filter);
        return *this;
    }
    ReadModel&& filter(EventFilter filter) && { return std::move(this->filter(std::move(filter))); }

    /// What to clear outside the state when the model starts over from the first event (no checkpoint, or
    /// one discarded after a revision bump): the rows of a projection, say. With a SqliteProjection or a
    /// PostgresProjection as checkpoint storage, the hook's statements and the reset checkpoint commit in one
    /// transaction.
    template <class F>
    ReadModel& on_reset(F hook) & {
        static_assert(std::invocable<F&>, "krmx::ReadModel::on_reset: the hook must be callable as ()");
        on_reset_ = std::move(hook);
        return *this;
    }
    template <class F>
    ReadModel&& on_reset(F hook) && {
        return std::move(on_reset(std::move(hook)));
    }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::uint32_t revision() const noexcept { return revision_; }
    [[nodiscard]] const EventCatalog& catalog() const noexcept { return catalog_; }
    [[nodiscard]] const State& initial_state() const noexcept { return initial_; }
    [[nodiscard]] const EventFilter& event_filter() const noexcept { return filter_; }
    /// The checkpoint version: a change of either revision discards checkpoints.
    [[nodiscard]] std::string version() const {
        return name_ + "@" + std::to_string(revision_) + "/" + catalog_.name() + "@" +
               std::to_string(catalog_.revision());
    }
    [[nodiscard]] const detail::Reducer<State>& reducer() const noexcept { return reducer_; }
    [[nodiscard]] const std::function<void(State&, const ModelSignal&)>& signal_handler() const noexcept {
        return on_signal_;
    }
    [[nodiscard]] const std::function<void()>& reset_hook() const noexcept { return on_reset_; }

  private:
    std::string name_;
    std::uint32_t revision_;
    EventCatalog catalog_;
    State initial_;
    detail::Reducer<State> reducer_;
    std::function<void(State&, const ModelSignal&)> on_signal_;
    std::function<void()> on_reset_;
    EventFilter filter_;
};

}  // namespace krmx

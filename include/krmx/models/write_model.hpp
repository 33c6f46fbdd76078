#pragma once
// Write models: materialize one entity (its stream) when a decision has to be made, decide, append.
//
//   auto result = book_model.on_stream("book-1").use_lock(locks).with_source(store).handle(
//       [](krmx::WriteContext<Book>& w) { w.emit(book::lent({"1", "alice"})); });
//
// `handle(block)`: acquires the lock (when a provider is set), reads the entity's stream from the store
// into a fresh state, runs the block, appends what it emitted with the expected revision of the stream as
// read, and releases the lock. The block sees its own changes: `emit` folds the event into the local state
// at once (through the reducer, or the StreamModel's handlers, whose guards may refuse it).
// If the block throws, nothing is appended and the lock is released: `krmx::Rejected` (a refusal, from the
// block or from a guard) comes back as a `refused` result with its reason; anything else is rethrown.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/core/event_type.hpp"
#include "krmx/core/outcome.hpp"
#include "krmx/models/event_catalog.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/models/reducer.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/stream/stream_model.hpp"

namespace krmx {

enum class WriteStatus : std::uint8_t {
    appended,         ///< the emitted events are stored
    nothing_emitted,  ///< the block emitted nothing; nothing was written
    refused,          ///< the block (or a guard) refused; nothing was written
};

[[nodiscard]] constexpr std::string_view to_string(WriteStatus status) noexcept {
    switch (status) {
        case WriteStatus::appended:
            return "appended";
        case WriteStatus::nothing_emitted:
            return "nothing_emitted";
        case WriteStatus::refused:
            return "refused";
    }
    return "?";
}

template <class State>
struct [[nodiscard]] WriteResult {
    WriteStatus status = WriteStatus::nothing_emitted;
    std::string reason{};                  ///< why it was refused
    std::optional<AppendResult> append{};  ///< where the events went, when appended
    std::size_t events = 0;                ///< events appended
    std::uint64_t skipped = 0;  ///< stored events of the stream that did not decode or were refused
    State state{};              ///< after the block when appended; as read from the store when refused

    [[nodiscard]] bool appended() const noexcept { return status == WriteStatus::appended; }
    [[nodiscard]] bool refused() const noexcept { return status == WriteStatus::refused; }
};

/// What a write model's block works with: the entity's current state and `emit`.
template <class State>
class WriteContext {
  public:
    [[nodiscard]] const State& state() const noexcept { return state_; }
    /// The stream's revision as read (empty: the stream has no events yet).
    [[nodiscard]] std::optional<Revision> revision() const noexcept { return revision_; }
    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] const std::vector<NewEvent>& emitted() const noexcept { return emitted_; }

    /// Emits an event: folds it into the state at once and appends it when the block returns. Throws
    /// krmx::Rejected when the model's guard refuses it (the state is then unchanged).
    template <class P>
    void emit(const TypedEvent<P>& event, std::string_view dispatcher = {}) {
        NewEvent encoded = catalog_->encode(event, dispatcher);
        RecordedEvent record;
        record.stream = stream_;
        record.revision = next_revision();
        record.type = encoded.type;
        record.payload = encoded.payload;
        record.dispatcher = encoded.dispatcher;
        record.metadata = encoded.metadata;
        const CatalogEvent decoded{std::move(record), detail::PayloadBox::make(event.payload)};
        std::string reason;
        State next = state_;  // the block may catch a refusal and carry on: keep the state exact
        if ((*reducer_)(next, decoded, reason) == Applied::refused) throw Rejected{reason};
        state_ = std::move(next);
        emitted_.push_back(std::move(encoded));
    }

  private:
    template <class S, class Store>
    friend class SourcedWriteModel;

    WriteContext(State state, std::string stream, std::optional<Revision> revision,
                 const EventCatalog& catalog, const detail::Reducer<State>& reducer)
        : state_(std::move(state)),
          stream_(std::move(stream)),
          revision_(revision),
          catalog_(&catalog),
          reducer_(&reducer) {}

    [[nodiscard]] Revision next_revision() const noexcept {
        return (revision_ ? *revision_ + 1 : 0) + emitted_.size();
    }

    State state_;
    std::string stream_;
    std::optional<Revision> revision_;
    const EventCatalog* catalog_;
    const detail::Reducer<State>* reducer_;
    std::vector<NewEvent> emitted_;
};

template <class State, class Store>
class SourcedWriteModel;

/// The definition of a write model for one entity stream. A value: cheap to copy and to configure per call.
template <class State>
class WriteModel {
    static_assert(std::copy_constructible<State> && std::is_move_assignable_v<State>,
                  "krmx::WriteModel<State>: State must be copy constructible and move assignable");

  public:
    using state_type = State;

    WriteModel(std::string name, EventCatalog catalog, State initial = State{})
        : name_(std::move(name)), catalog_(std::move(catalog)), initial_(std::move(initial)) {}

    /// A reducing write model over a StreamModel: catch-up and `emit` go through its handlers, so its guards
    /// refuse what the game would refuse.
    static WriteModel reducing(std::string name, EventCatalog catalog, const StreamModel<State>& model) {
        WriteModel m{std::move(name), std::move(catalog), model.initial_state()};
        m.reducer_ = detail::reducer_from_model(model);
        return m;
    }

    /// `(State&, const CatalogEvent&)` or `(const State&, const CatalogEvent&) -> State`.
    template <class F>
    WriteModel& reduce(F reducer) & {
        reducer_ = detail::make_reducer<State>(std::move(reducer));
        return *this;
    }
    template <class F>
    WriteModel&& reduce(F reducer) && {
        return std::move(reduce(std::move(reducer)));
    }
    /// The entity's stream, read on catch-up and appended to.
    WriteModel& on_stream(std::string stream) & {
        stream_ = std::move(stream);
        return *this;
    }
    WriteModel&& on_stream(std::string stream) && { return std::move(on_stream(std::move(stream))); }
    /// Locks the lock named `name` (default: the stream's name) around every `handle`.
    WriteModel& use_lock(LockProviderRef provider, std::string name = {}) & {
        locks_ = std::move(provider);
        lock_name_ = std::move(name);
        return *this;
    }
    WriteModel&& use_lock(LockProviderRef provider, std::string name = {}) && {
        return std::move(use_lock(std::move(provider), std::move(name)));
    }

    template <EventStore Store>
    [[nodiscard]] SourcedWriteModel<State, Store> with_source(Store& store) const {
        return SourcedWriteModel<State, Store>{*this, store};
    }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] const EventCatalog& catalog() const noexcept { return catalog_; }

  private:
    template <class S, class Store>
    friend class SourcedWriteModel;

    std::string name_;
    EventCatalog catalog_;
    State initial_;
    detail::Reducer<State> reducer_ = [](State&, const CatalogEvent&, std::string&) {
        return Applied::ignored;
    };
    std::string stream_{};
    LockProviderRef locks_{};
    std::string lock_name_{};
};

/// A write model bound to its event store; `handle` runs one decision.
template <class State, class Store>
class SourcedWriteModel {
  public:
    static constexpr std::size_t batch_size = 512;

    SourcedWriteModel(WriteModel<State> model, Store& store) : model_(std::move(model)), store_(&store) {}

    /// Lock, catch up, run `block(WriteContext<State>&)`, append with the expected revision, unlock.
    template <class F>
    WriteResult<State> handle(F&& block) {
        static_assert(std::invocable<F&, WriteContext<State>&>,
                      "krmx::SourcedWriteModel::handle: the block must be callable as "
                      "(krmx::WriteContext<State>&)");
        if (model_.stream_.empty()) {
            throw std::logic_error("krmx::WriteModel '" + model_.name_ + "': no stream (call on_stream)");
        }
        Lock lock;
        if (model_.locks_)
            lock = model_.locks_.acquire(model_.lock_name_.empty() ? model_.stream_ : model_.lock_name_);

        WriteResult<State> result;
        State state = model_.initial_;
        std::optional<Revision> revision;
        (void)for_each_in_stream(*store_, model_.stream_, batch_size, [&](RecordedEvent& record) {
            revision = record.revision;
            auto decoded = model_.catalog_.decode(std::move(record));
            std::string reason;
            if (!decoded.decoded() || model_.reducer_(state, decoded.event, reason) == Applied::refused) {
                ++result.skipped;
            }
        });

        State as_read = state;  // what a refusal reports
        WriteContext<State> context{std::move(state), model_.stream_, revision, model_.catalog_,
                                    model_.reducer_};
        try {
            std::forward<F>(block)(context);
        } catch (const Rejected& refusal) {
            result.status = WriteStatus::refused;
            result.reason = refusal.what();
            result.state = std::move(as_read);
            return result;  // nothing appended; the lock is released on return
        }
        if (!context.emitted_.empty()) {
            const auto expected =
                revision ? ExpectedRevision::exact(*revision) : ExpectedRevision::no_stream();
            result.append =
                store_->append(model_.stream_, expected, std::span<const NewEvent>{context.emitted_});
            result.status = WriteStatus::appended;
            result.events = context.emitted_.size();
        }
        result.state = std::move(context.state_);
        return result;
    }

  private:
    WriteModel<State> model_;
    Store* store_;
};

}  // namespace krmx

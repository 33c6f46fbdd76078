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
//
// Snapshots (`snapshots(checkpoints, {.every_events = 100, .revision = 1})`, for a krmx::SnapshotState): the
// entity is loaded from its newest usable snapshot (krmx/store/snapshot.hpp) plus the events after it, so a
// command reads a bounded tail instead of the whole stream. A snapshot is used only when its state decodes
// and the stored stream holds, at its position - 1, the event it was taken after (same id): one of another
// revision, damaged, unreadable or of another stream is skipped and counted (`WriteResult::snapshots`), and
// the next one or a full replay serves. After an append that takes the stream `every_events` or more past
// the snapshot the command started from, the state after the block is saved as the next snapshot; a save
// that fails is counted, never the command's failure (its events are stored). Emitted events get their ids
// (krmx::new_event_id) before the append, so that the snapshot knows the id of the event it follows.

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
#include "krmx/core/snapshot_state.hpp"
#include "krmx/models/event_catalog.hpp"
#include "krmx/models/lock_provider.hpp"
#include "krmx/models/reducer.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/snapshot.hpp"
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
    std::uint64_t skipped = 0;             ///< stored events read that did not decode or were refused
    std::uint64_t replayed = 0;  ///< stored events read and folded (the tail after a snapshot, or all)
    /// The position of the snapshot the state was loaded from (empty: folded from the first event).
    std::optional<std::size_t> from_snapshot{};
    /// What this command's snapshots did: `restored` (0 or 1), the ones skipped, `saved`, `save_failures`.
    SnapshotStatistics snapshots{};
    State state{};  ///< after the block when appended; as read from the store when refused

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

/// When a write model saves snapshots, and of which shape.
struct WriteSnapshotOptions {
    /// Save after an append that takes the stream at least this many events past the snapshot the command
    /// started from (or past the start): a command then folds fewer stored events than this. 0 counts as 1.
    std::uint64_t every_events = 100;
    /// The shape of the State's JSON: bump it when to_json / from_json change, and older snapshots are
    /// skipped (counted as `other_revision`) and replaced.
    std::uint32_t revision = 1;
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
    /// Loads the entity from its snapshots in `checkpoints` and saves them there (see the top of this file).
    /// Snapshots are kept under the model's name and stream (`snapshot_stream()`), so two models of one
    /// stream never read each other's. The State must convert to and from JSON (krmx::SnapshotState).
    template <class S = State>
    WriteModel& snapshots(CheckpointStoreRef checkpoints, WriteSnapshotOptions options = {}) & {
        static_assert(
            SnapshotState<S>,
            "krmx::WriteModel::snapshots: the State must convert to and from JSON (krmx::SnapshotState: "
            "nlohmann's to_json and from_json, found by ADL next to the State)");
        snapshot_store_ = std::move(checkpoints);
        snapshot_options_ = options;
        return *this;
    }
    template <class S = State>
    WriteModel&& snapshots(CheckpointStoreRef checkpoints, WriteSnapshotOptions options = {}) && {
        return std::move(snapshots<S>(std::move(checkpoints), options));
    }

    template <EventStore Store>
    [[nodiscard]] SourcedWriteModel<State, Store> with_source(Store& store) const {
        return SourcedWriteModel<State, Store>{*this, store};
    }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] const EventCatalog& catalog() const noexcept { return catalog_; }
    /// The name the stream's snapshots are kept under in the checkpoint store (load_snapshots,
    /// save_snapshot): the model's name (escaped, so that it cannot run into the stream) and the stream.
    [[nodiscard]] std::string snapshot_stream() const {
        std::string key;
        detail::append_key_part(key, name_);
        key += '|';
        key += stream_;
        return key;
    }
    [[nodiscard]] const WriteSnapshotOptions& snapshot_options() const noexcept { return snapshot_options_; }

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
    CheckpointStoreRef snapshot_store_{};
    WriteSnapshotOptions snapshot_options_{};
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
        const auto fold = [&](RecordedEvent& record) {
            revision = record.revision;
            ++result.replayed;
            auto decoded = model_.catalog_.decode(std::move(record));
            std::string reason;
            if (!decoded.decoded() || model_.reducer_(state, decoded.event, reason) == Applied::refused) {
                ++result.skipped;
            }
        };
        // Folds `records[first..]` and the rest of the stream after them, a batch at a time.
        const auto fold_from = [&](std::vector<RecordedEvent> records, std::size_t first) {
            for (;;) {
                for (std::size_t i = first; i < records.size(); ++i) fold(records[i]);
                if (records.size() < batch_size) return;
                const Revision next = records.back().revision + 1;
                records = store_->read_stream(model_.stream_, next, batch_size);
                first = 0;
            }
        };
        if (!load_snapshot(state, revision, result, fold_from)) {
            fold_from(store_->read_stream(model_.stream_, 0, batch_size), 0);
        }

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
            // Ids known before the append: a snapshot records the id of the event it follows.
            for (auto& event : context.emitted_) {
                if (event.id.empty()) event.id = new_event_id();
            }
            const auto expected =
                revision ? ExpectedRevision::exact(*revision) : ExpectedRevision::no_stream();
            result.append =
                store_->append(model_.stream_, expected, std::span<const NewEvent>{context.emitted_});
            result.status = WriteStatus::appended;
            result.events = context.emitted_.size();
            save_snapshot_after(result, context);
        }
        result.state = std::move(context.state_);
        return result;
    }

  private:
    // Starts `state` from the newest usable snapshot and folds the stream after it (through `fold_from`);
    // false when none serves (the caller folds from the first event). Unusable snapshots are counted.
    template <class FoldFrom>
    bool load_snapshot(State& state, std::optional<Revision>& revision, WriteResult<State>& result,
                       const FoldFrom& fold_from) {
        if constexpr (SnapshotState<State>) {
            if (!model_.snapshot_store_) return false;
            auto& statistics = result.snapshots;
            for (auto& snapshot : load_snapshots(model_.snapshot_store_, model_.snapshot_stream(),
                                                 model_.snapshot_options_.revision, statistics)) {
                std::optional<State> restored;
                try {
                    restored.emplace(snapshot.state.template get<State>());
                } catch (const std::exception&) {
                    ++statistics.unreadable;
                    continue;
                }
                // The stream must still hold the event the snapshot was taken after (a stream replaced, or
                // another store's snapshot, does not); a snapshot at 0 follows nothing to check.
                std::vector<RecordedEvent> records;
                if (snapshot.position > 0) {
                    records = store_->read_stream(model_.stream_,
                                                  static_cast<Revision>(snapshot.position - 1), batch_size);
                }
                if (records.empty() || !snapshot_follows(snapshot, records.front())) {
                    ++statistics.not_following;
                    continue;
                }
                ++statistics.restored;
                result.from_snapshot = snapshot.position;
                state = std::move(*restored);
                revision = records.front().revision;
                fold_from(std::move(records), 1);
                return true;
            }
        } else {
            (void)state;
            (void)revision;
            (void)result;
            (void)fold_from;
        }
        return false;
    }

    // Saves the state after the block as a snapshot when the append took the stream `every_events` past the
    // snapshot the command started from. A failure is counted: the events are stored, the command stands.
    void save_snapshot_after(WriteResult<State>& result, const WriteContext<State>& context) {
        if constexpr (SnapshotState<State>) {
            if (!model_.snapshot_store_ || !result.append || result.append->already_stored) return;
            const auto& options = model_.snapshot_options_;
            const std::uint64_t position = result.append->last_revision + 1;
            const std::uint64_t since = position - result.from_snapshot.value_or(0);
            if (since < (options.every_events == 0 ? 1 : options.every_events)) return;
            try {
                StoredSnapshot snapshot;
                snapshot.position = static_cast<std::size_t>(position);
                snapshot.state = nlohmann::json(context.state_);
                snapshot.last_event_id = context.emitted_.back().id;
                krmx::save_snapshot(model_.snapshot_store_, model_.snapshot_stream(), options.revision,
                                    snapshot);
                ++result.snapshots.saved;
            } catch (const std::exception&) {
                ++result.snapshots.save_failures;
            }
        } else {
            (void)result;
            (void)context;
        }
    }

    WriteModel<State> model_;
    Store* store_;
};

}  // namespace krmx

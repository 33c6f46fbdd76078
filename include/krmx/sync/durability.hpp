#pragma once
// What a durable domain needs from its storage: a journal that commits batches of accepted events and
// loads them back after a restart. krmx::durable(store) (sync/durable.hpp) is the one for every EventStore;
// write your own for other storage by giving krmx::Durability a function that opens a DomainJournal.
//
// A domain opens its journal when it attaches to its host, restores from it before it serves anyone, and
// then commits through it: one batch at a time, each batch the events accepted since the previous one
// (see sync/detail/commit_pipeline.hpp). A journal may also keep snapshots (the state at a position, so
// that a restart replays only the events after it) and read old events back in pages (a durable domain
// keeps only a tail of its stream in memory and reads older history from its journal).

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/snapshot.hpp"
#include "krmx/sync/domain_host.hpp"

namespace krmx {

/// One accepted event on its way into storage. The views are valid during the `commit` call only.
struct CommitEvent {
    std::size_t position = 0;     ///< in the domain's stream, 0-based; dense within a batch
    std::string_view dispatcher;
    std::string_view type;
    const detail::PayloadBox* payload = nullptr;  ///< as the model decoded it (the event's own type)
    std::string_view text;                        ///< the event as it arrived, re-sent byte for byte
    std::uint32_t schema = 1;                     ///< the schema version the model writes this type in
    std::string_view id = {};  ///< the id to store it under (a snapshot names it); empty: the store's choice
};

/// How much of its stream a durable domain keeps in memory, and when it snapshots its state.
struct MemoryPolicy {
    /// Keep about this many of the latest confirmed events in memory (between a half and the whole of it):
    /// older ones are read from the journal in pages when a joiner or a resync needs them.
    std::size_t tail_events = std::size_t{1} << 16;
    /// The same in bytes of event text and dispatcher names.
    std::size_t tail_bytes = std::size_t{16} << 20;
    /// Save a snapshot (a journal that keeps them) after this many events since the last one...
    std::size_t snapshot_every_events = std::size_t{1} << 16;
    /// ... or this many bytes of event text, whichever comes first.
    std::size_t snapshot_every_bytes = std::size_t{16} << 20;
};

/// A page of stored events read back, or why the read failed.
using ReadDone = std::function<void(std::vector<RecordedEvent> records, std::optional<std::string> error)>;
/// How a snapshot save ended: no error means saved.
using SaveDone = std::function<void(std::optional<std::string> error)>;

/// How a commit ended: no error means stored. Call it once, on the domain's thread (through the loop's
/// `post`, or from inside `commit`); later calls, and calls after the domain is gone, do nothing.
using CommitDone = std::function<void(std::optional<std::string> error)>;

namespace detail {
/// Runs `work` and tells `done` how it ended: no error, or what it threw.
inline void run_in_call(const std::function<void()>& work, const std::function<void(std::optional<std::string>)>& done) {
    std::optional<std::string> error;
    try {
        work();
    } catch (const std::exception& e) {
        error = e.what();
    } catch (...) {
        error = "it threw something that is no std::exception";
    }
    done(std::move(error));
}
}  // namespace detail

/// A domain's durable storage.
class DomainJournal {
  public:
    virtual ~DomainJournal() = default;
    /// Calls `load(record)` with every stored event of the domain, in order (the record is the callee's).
    virtual void restore(const std::function<void(RecordedEvent&)>& load) = 0;
    /// Calls `load(record)` with every stored event after `snapshot`, in order, when the stored stream
    /// holds the event the snapshot follows (snapshot_follows); false, having loaded nothing, when not.
    virtual bool restore_after(const StoredSnapshot& snapshot, const std::function<void(RecordedEvent&)>& load) {
        (void)snapshot;
        (void)load;
        return false;
    }
    /// Stores `batch` (dense positions, the first right after the last stored event, refused if another
    /// writer got there first) and calls `done` when that ended. Throwing fails the batch.
    virtual void commit(std::span<const CommitEvent> batch, CommitDone done) = 0;
    /// The counters of the store behind it, if it keeps any (for metrics; called on the domain's thread).
    [[nodiscard]] virtual std::optional<StoreStatistics> store_statistics() const { return std::nullopt; }

    /// How much the domain keeps in memory and how often it snapshots.
    [[nodiscard]] virtual MemoryPolicy memory_policy() const { return {}; }
    /// Whether it keeps snapshots.
    [[nodiscard]] virtual bool keeps_snapshots() const { return false; }
    /// The usable snapshots for model revision `revision`, newest first; skipped ones counted.
    [[nodiscard]] virtual std::vector<StoredSnapshot> snapshots(std::uint32_t revision, SnapshotStatistics& statistics) {
        (void)revision;
        (void)statistics;
        return {};
    }
    /// Saves `snapshot` after every commit handed over before it, and calls `done` as `commit` does.
    virtual void save_snapshot(std::uint32_t revision, StoredSnapshot snapshot, SaveDone done) {
        (void)revision;
        (void)snapshot;
        done(std::optional<std::string>{"this journal keeps no snapshots"});
    }
    /// Runs `work` off the domain's thread if the journal has a thread for it (beside its commits, not after
    /// them), else in the call, and calls `done` as `commit` does. The domain writes its captures of the state
    /// as JSON through this, so that a large state does not hold up its loop; `work` touches only what it owns.
    virtual void run_aside(std::function<void()> work, SaveDone done) { detail::run_in_call(work, done); }
    /// Reads at most `count` stored events from position `from` (0-based, as in the domain), after every
    /// commit handed over before it, and calls `done` as `commit` does. The domain reads what it no longer
    /// holds in memory through this.
    virtual void read(std::size_t from, std::size_t count, ReadDone done) {
        (void)from;
        (void)count;
        done({}, std::optional<std::string>{"this journal cannot read its events back"});
    }

  protected:
    DomainJournal() = default;
    DomainJournal(const DomainJournal&) = default;
    DomainJournal& operator=(const DomainJournal&) = default;
};

/// StreamDomainOptions::durability: how a domain's events are stored. Empty: in memory only. Copies share
/// what they hold (krmx::durable's writer thread serves every domain given a copy).
class Durability {
  public:
    /// `open(domain, loop)`: the journal of one domain, on the host's event loop. Throws when it cannot
    /// serve it (std::invalid_argument: pipelined commits on a transport without a loop, say).
    using Open = std::function<std::unique_ptr<DomainJournal>(std::string_view domain, const EventLoop& loop)>;

    Durability() = default;
    explicit Durability(Open open) : open_(std::make_shared<Open>(std::move(open))) {}

    [[nodiscard]] explicit operator bool() const noexcept { return open_ != nullptr; }
    [[nodiscard]] std::unique_ptr<DomainJournal> open(std::string_view domain, const EventLoop& loop) const {
        if (!open_) throw std::logic_error("krmx::Durability: empty");
        auto journal = (*open_)(domain, loop);
        if (!journal) throw std::logic_error("krmx::Durability: the open function returned no journal");
        return journal;
    }

  private:
    std::shared_ptr<const Open> open_;
};

}  // namespace krmx

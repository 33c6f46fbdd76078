#pragma once
// What a durable domain needs from its storage: a journal that commits batches of accepted events and
// loads them back after a restart. krmx::durable(store) (sync/durable.hpp) is the one for every EventStore;
// write your own for other storage by giving krmx::Durability a function that opens a DomainJournal.
//
// A domain opens its journal when it attaches to its host, restores from it before it serves anyone, and
// then commits through it: one batch at a time, each batch the events accepted since the previous one
// (see sync/detail/commit_pipeline.hpp).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "krmx/core/detail/payload_box.hpp"
#include "krmx/store/event_store.hpp"
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
};

/// How a commit ended: no error means stored. Call it once, on the domain's thread (through the loop's
/// `post`, or from inside `commit`); later calls, and calls after the domain is gone, do nothing.
using CommitDone = std::function<void(std::optional<std::string> error)>;

/// A domain's durable storage.
class DomainJournal {
  public:
    virtual ~DomainJournal() = default;
    /// Calls `load(record)` with every stored event of the domain, in order (the record is the callee's).
    virtual void restore(const std::function<void(RecordedEvent&)>& load) = 0;
    /// Stores `batch` (dense positions, the first right after the last stored event, refused if another
    /// writer got there first) and calls `done` when that ended. Throwing fails the batch.
    virtual void commit(std::span<const CommitEvent> batch, CommitDone done) = 0;
    /// The counters of the store behind it, if it keeps any (for metrics; called on the domain's thread).
    [[nodiscard]] virtual std::optional<StoreStatistics> store_statistics() const { return std::nullopt; }

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

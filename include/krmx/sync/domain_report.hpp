#pragma once
// What a host's domains tell about themselves, for monitoring (krmx::net::Metrics, readiness probes) without
// the sync layer knowing of either: a DomainReport read when asked (DomainHost::reports()), and a
// DomainObserver told of latencies as they happen. Nobody pays for what nobody asks: without an observer a
// domain does not read the clock.

#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "krmx/core/clock.hpp"
#include "krmx/store/event_store.hpp"
#include "krmx/store/snapshot.hpp"

namespace krmx {

/// Per-domain counters (krmx::StreamDomain). Never reset.
struct StreamDomainStatistics {
    std::uint64_t accepted = 0;         ///< events confirmed (from users and from server code)
    std::uint64_t restored = 0;         ///< events loaded from the store when the domain was made
    std::uint64_t unknown_type = 0;     ///< refused: no handler for the event's type
    std::uint64_t invalid_payload = 0;  ///< refused: the payload does not fit the handler's payload type
    std::uint64_t malformed = 0;   ///< refused: no event, an event that is not `{"type":string,..}`, a bad id
    std::uint64_t rejected = 0;    ///< refused by a guard or handler
    std::uint64_t failed = 0;      ///< refused: a handler threw something else
    std::uint64_t not_stored = 0;  ///< accepted by the model, taken back because its commit failed
    std::uint64_t too_large = 0;   ///< refused: over max_event_bytes or the depth limit, or the history is full
    std::uint64_t reserved_name = 0;  ///< refused: a user named like the server (or its dispatchers)
    std::uint64_t resyncs = 0;        ///< `stream/resync` requests answered
    std::uint64_t invalidates_sent = 0;
    std::uint64_t dropped = 0;  ///< refused appends without a readable id: nothing to answer
    std::uint64_t histories_sent = 0;
    std::uint64_t commits = 0;         ///< batches stored (durable)
    std::uint64_t failed_commits = 0;  ///< batches taken back because their commit failed (durable)
    std::uint64_t redispatched = 0;    ///< events dispatched again after a failed commit before them
    std::uint64_t not_member = 0;  ///< refused: the sender is outside the domain's audience
    std::uint64_t not_member_resyncs = 0;  ///< `stream/resync` from users outside the audience: unanswered
    std::uint64_t history_reads = 0;  ///< pages of old events read back from the store (durable)
    /// Reads of old events that failed: that user hears nothing until a read succeeds (tried again after
    /// the next commit, and after 100 ms to 5 s where the transport has timers).
    std::uint64_t history_read_failures = 0;
    std::uint64_t snapshots_sent = 0;  ///< `stream/snapshot` states sent to joiners instead of old events

    [[nodiscard]] std::uint64_t refused() const noexcept {
        return unknown_type + invalid_payload + malformed + rejected + failed + not_stored + too_large +
               reserved_name + not_member;
    }
};

/// What a projection domain (krmx::ProjectionDomain) did beyond its stream's counters. Never reset.
struct ProjectionStatistics {
    std::uint64_t sets_sent = 0;        ///< `projection/set`: on hearing, and for deltas too large to send
    std::uint64_t deltas_sent = 0;      ///< `projection/delta` messages, releases of unchanged views included
    std::uint64_t deltas_computed = 0;  ///< json_diff runs: one per distinct (old, new) view pair per batch
    std::uint64_t parts_reused = 0;     ///< members of views diffed once for users whose views changed there alike
    std::uint64_t views_computed = 0;   ///< view function calls
    std::uint64_t view_failures = 0;    ///< view functions that threw or gave a View that is no JSON: skipped
    std::uint64_t views_too_large = 0;  ///< views that fit in no message: not sent
    std::uint64_t unanswered = 0;       ///< refused actions without optimisticId: nothing to answer
};

/// One domain at the moment it is asked (on the host's thread).
struct DomainReport {
    std::string_view name;
    StreamDomainStatistics statistics;
    std::size_t events = 0;         ///< accepted, including those that wait for their commit
    std::size_t confirmed = 0;      ///< confirmed to users
    std::size_t history_bytes = 0;  ///< event texts and dispatchers held in memory
    std::size_t held_from = 0;      ///< the first event held in memory (durable: older ones are in the store)
    bool durable = false;
    std::size_t uncommitted = 0;  ///< events waiting for their commit, the batch in flight included
    bool committing = false;      ///< a commit is in flight
    /// Why the domain cannot serve as it should (its last commit failed: its store is unreachable as far as
    /// it knows); empty when it can. A durable domain is restored once it exists (it restores when made).
    std::optional<std::string> not_ready;
    /// The counters of its store (durable on an EventStore that keeps them).
    std::optional<StoreStatistics> store;
    /// Snapshots saved, restored from and skipped (durable domains whose model has snapshots on).
    std::optional<SnapshotStatistics> snapshots;
    /// A projection domain's own counters (none for a stream domain).
    std::optional<ProjectionStatistics> projection;
};

/// Told of latencies on the host's thread, as they happen. Must not throw; must outlive its registration
/// (DomainHost::observe).
class DomainObserver {
  public:
    virtual ~DomainObserver() = default;
    /// A user's `stream/append` reached the domain `elapsed` ago and its confirmation (the broadcast) is
    /// being sent now: for a durable domain that includes the commit.
    virtual void append_confirmed(std::string_view domain, Duration elapsed) noexcept = 0;
    /// A commit of a durable domain ended after `elapsed`, stored or failed.
    virtual void commit_ended(std::string_view domain, Duration elapsed, bool stored) noexcept = 0;

  protected:
    DomainObserver() = default;
    DomainObserver(const DomainObserver&) = default;
    DomainObserver& operator=(const DomainObserver&) = default;
};

}  // namespace krmx

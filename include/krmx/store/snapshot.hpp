#pragma once
// Snapshots: the state of a stream after its first `position` events, kept in a CheckpointStore (memory,
// SQLite, PostgreSQL) so that a restart, a late joiner or a write model starts from it and reads only the
// events after it.
//
// A state is saved and loaded through nlohmann's `to_json` / `from_json`, found by ADL (or an
// `adl_serializer`): the way nlohmann users already customise their types (krmx::SnapshotState).
//
// Each stream has two slots, written in turn: a save replaces the older one, so the newest snapshot stays
// valid while the next one is written (a process killed in a save loses nothing; the stores' saves are
// atomic too). A snapshot records its position, the model's snapshot revision (a revision change makes
// old snapshots unusable: they are skipped, and overwritten by the next save), and the id of the last event
// it folded in (ids are unique in a store), so that a snapshot is only used on the stream it was taken of. A
// snapshot that is damaged (the store's checksum), incomplete, of another revision, or that does not
// follow the stored stream is skipped and counted, never trusted.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "krmx/core/snapshot_state.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx {

/// One snapshot as stored.
struct StoredSnapshot {
    /// The state after events [0, position) of the stream.
    std::size_t position = 0;
    /// The state, as `nlohmann::json(state)` wrote it.
    nlohmann::json state{};
    /// The id of the stored event at position - 1 (empty when position is 0): the stream must hold it there.
    std::string last_event_id{};

    friend bool operator==(const StoredSnapshot&, const StoredSnapshot&) = default;
};

/// What loading snapshots found and skipped. Counters, so that a number that keeps growing is noticed.
struct SnapshotStatistics {
    std::uint64_t saved = 0;           ///< snapshots written
    std::uint64_t save_failures = 0;   ///< saves that failed (the previous snapshot stays)
    std::uint64_t restored = 0;        ///< restores that started from a snapshot
    std::uint64_t damaged = 0;         ///< skipped: the store reported it damaged, or its record is incomplete
    std::uint64_t other_revision = 0;  ///< skipped: written by another revision of the model
    std::uint64_t not_following = 0;   ///< skipped: the stored stream does not hold the event it follows
    std::uint64_t unreadable = 0;      ///< skipped: the model's from_json refused its state

    [[nodiscard]] std::uint64_t skipped() const noexcept {
        return damaged + other_revision + not_following + unreadable;
    }
    friend bool operator==(const SnapshotStatistics&, const SnapshotStatistics&) = default;
};

namespace detail {

inline constexpr std::string_view snapshot_slots[2] = {"a", "b"};

// The checkpoint key of one slot of a stream's snapshots. Escaped like checkpoint keys, so no stream's key
// runs into another's.
[[nodiscard]] inline std::string snapshot_key(std::string_view stream, std::size_t slot) {
    std::string key = "krmx.snapshot|";
    append_key_part(key, stream);
    key += '|';
    key += snapshot_slots[slot];
    return key;
}

[[nodiscard]] inline std::string snapshot_version(std::uint32_t revision) {
    return "snapshot@" + std::to_string(revision);
}

// A slot's record, or why it is unusable (counted in `statistics`).
template <CheckpointStore Store>
std::optional<StoredSnapshot> load_snapshot_slot(const Store& store, std::string_view stream, std::size_t slot,
                                                 std::uint32_t revision, SnapshotStatistics& statistics) {
    std::optional<Checkpoint> checkpoint;
    try {
        checkpoint = store.load(snapshot_key(stream, slot));
    } catch (const CorruptRecord&) {
        ++statistics.damaged;
        return std::nullopt;
    }
    if (!checkpoint) return std::nullopt;
    if (checkpoint->version != snapshot_version(revision)) {
        ++statistics.other_revision;
        return std::nullopt;
    }
    const auto& record = checkpoint->state;
    const auto state = record.is_object() ? record.find("state") : record.end();
    if (state == record.end()) {
        ++statistics.damaged;
        return std::nullopt;
    }
    StoredSnapshot snapshot;
    snapshot.position = static_cast<std::size_t>(checkpoint->position);
    snapshot.state = *state;
    if (const auto last = record.find("last_event_id"); last != record.end()) {
        if (!last->is_string()) {
            ++statistics.damaged;
            return std::nullopt;
        }
        snapshot.last_event_id = last->get<std::string>();
    }
    if ((snapshot.position == 0) != snapshot.last_event_id.empty()) {
        ++statistics.damaged;
        return std::nullopt;
    }
    return snapshot;
}

}  // namespace detail

/// The usable snapshots of `stream` for model revision `revision`, newest first (at most two). Unusable
/// ones are skipped and counted in `statistics`; a store that fails otherwise throws its StoreError.
template <CheckpointStore Store>
[[nodiscard]] std::vector<StoredSnapshot> load_snapshots(const Store& store, std::string_view stream,
                                                         std::uint32_t revision, SnapshotStatistics& statistics) {
    std::vector<StoredSnapshot> found;
    for (std::size_t slot = 0; slot < 2; ++slot) {
        if (auto snapshot = detail::load_snapshot_slot(store, stream, slot, revision, statistics)) {
            found.push_back(std::move(*snapshot));
        }
    }
    if (found.size() == 2 && found[1].position > found[0].position) std::swap(found[0], found[1]);
    return found;
}

/// Whether `record`, read at revision `snapshot.position - 1` of its stream, is the event `snapshot` follows.
[[nodiscard]] inline bool snapshot_follows(const StoredSnapshot& snapshot, const RecordedEvent& record) {
    return snapshot.position > 0 && record.revision == snapshot.position - 1 && record.id == snapshot.last_event_id;
}

/// Saves `snapshot` of `stream` in the slot that does not hold the newest usable snapshot, so that a save
/// that fails or is cut short leaves that one in place. Throws the store's StoreError.
template <CheckpointStore Store>
void save_snapshot(Store& store, std::string_view stream, std::uint32_t revision, const StoredSnapshot& snapshot) {
    // The slot to keep: the usable one with the highest position (nothing counted here: loads count).
    SnapshotStatistics ignored;
    std::size_t keep = 1;  // with no usable slot, write slot "a"
    std::optional<std::size_t> best;
    for (std::size_t slot = 0; slot < 2; ++slot) {
        if (auto s = detail::load_snapshot_slot(store, stream, slot, revision, ignored)) {
            if (!best || s->position > *best) {
                best = s->position;
                keep = slot;
            }
        }
    }
    Checkpoint checkpoint;
    checkpoint.position = snapshot.position;
    checkpoint.version = detail::snapshot_version(revision);
    checkpoint.state = nlohmann::json::object();
    checkpoint.state["state"] = snapshot.state;
    if (!snapshot.last_event_id.empty()) checkpoint.state["last_event_id"] = snapshot.last_event_id;
    store.save(detail::snapshot_key(stream, 1 - keep), checkpoint);
}

}  // namespace krmx

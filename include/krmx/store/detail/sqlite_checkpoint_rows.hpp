#pragma once
// The `krmx_checkpoints` rows, shared by SqliteCheckpointStore and SqliteProjection so that either reads
// the other's checkpoints (same columns, same checksum). Callers hold their connection's lock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/sqlite.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

inline std::int64_t checkpoint_checksum(std::string_view key, std::string_view state, Position position,
                                        std::string_view version) {
    return static_cast<std::int64_t>(RecordHasher{}.add(key).add(state).add(position).add(version).value());
}

/// The checkpoint under `key`, verified against its checksum; throws CorruptRecord when it is damaged.
inline std::optional<Checkpoint> load_checkpoint_row(SqliteConnection& connection, std::string_view key) {
    if (checkpoint_key_problem(key)) return std::nullopt;
    auto& select = connection.statement(
        "SELECT state, position, version, checksum FROM krmx_checkpoints WHERE key = ?1");
    Reset reset{select};
    select.bind(1, key);
    if (!select.step()) return std::nullopt;
    const std::string_view state = select.text(0);
    const auto position = static_cast<Position>(select.int64(1));
    const std::string_view version = select.text(2);
    if (checkpoint_checksum(key, state, position, version) != select.int64(3)) {
        throw CorruptRecord("the checkpoint " + detail::quoted(key) + " failed its checksum: it is damaged");
    }
    Checkpoint checkpoint;
    try {
        checkpoint.state = nlohmann::json::parse(state.begin(), state.end());
    } catch (const nlohmann::json::exception& e) {
        throw CorruptRecord("the checkpoint " + detail::quoted(key) + " does not parse: " + e.what());
    }
    checkpoint.position = position;
    checkpoint.version = std::string{version};
    return checkpoint;
}

inline void save_checkpoint_row(SqliteConnection& connection, std::string_view key,
                                const Checkpoint& checkpoint) {
    check_checkpoint_key(key);
    const std::string state = serialize_json(checkpoint.state, "checkpoint state");
    const auto saved_at = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    auto& upsert = connection.statement(
        "INSERT INTO krmx_checkpoints (key, state, position, version, saved_at, checksum) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
        "position = excluded.position, version = excluded.version, saved_at = excluded.saved_at, "
        "checksum = excluded.checksum");
    Reset reset{upsert};
    upsert.bind(1, key);
    upsert.bind(2, std::string_view{state});
    upsert.bind(3, static_cast<std::int64_t>(checkpoint.position));
    upsert.bind(4, std::string_view{checkpoint.version});
    upsert.bind(5, static_cast<std::int64_t>(saved_at.count()));
    upsert.bind(6, checkpoint_checksum(key, state, checkpoint.position, checkpoint.version));
    upsert.run();
}

/// Whether there was a checkpoint to remove.
inline bool erase_checkpoint_row(SqliteConnection& connection, std::string_view key) {
    if (checkpoint_key_problem(key)) return false;
    auto& remove = connection.statement("DELETE FROM krmx_checkpoints WHERE key = ?1");
    Reset reset{remove};
    remove.bind(1, key);
    remove.run();
    return sqlite3_changes(connection.handle()) > 0;
}

}  // namespace krmx::detail

#pragma once
// The `krmx_checkpoints` rows of a PostgreSQL schema, shared by PostgresCheckpointStore and
// PostgresProjection so that either reads the other's checkpoints. Callers hold their connection's lock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "krmx/core/detail/json_write.hpp"
#include "krmx/store/checkpoint_store.hpp"
#include "krmx/store/detail/append_checks.hpp"
#include "krmx/store/detail/postgres.hpp"
#include "krmx/store/event_store.hpp"

namespace krmx::detail {

/// The checkpoint under `key`; throws CorruptRecord when its state does not parse.
inline std::optional<Checkpoint> load_checkpoint_row(PgConnection& connection, const std::string& schema,
                                                     std::string_view key) {
    if (checkpoint_key_problem(key)) return std::nullopt;
    const auto row = connection.exec("SELECT state, position, version FROM " + quoted_identifier(schema) +
                                         ".krmx_checkpoints WHERE key = $1",
                                     {key});
    if (row.rows() == 0) return std::nullopt;
    const std::string_view state = row.text(0, 0);
    Checkpoint checkpoint;
    try {
        checkpoint.state = nlohmann::json::parse(state.begin(), state.end());
    } catch (const nlohmann::json::exception& e) {
        throw CorruptRecord("the checkpoint " + detail::quoted(key) + " does not parse: " + e.what());
    }
    checkpoint.position = static_cast<Position>(row.int64(0, 1));
    checkpoint.version = std::string{row.text(0, 2)};
    return checkpoint;
}

inline void save_checkpoint_row(PgConnection& connection, const std::string& schema, std::string_view key,
                                const Checkpoint& checkpoint) {
    check_checkpoint_key(key);
    if (checkpoint.version.find('\0') != std::string::npos) {
        throw StoreError("the checkpoint version contains a NUL character, which PostgreSQL cannot store");
    }
    const std::string state = serialize_json(checkpoint.state, "checkpoint state");
    const std::string position = std::to_string(checkpoint.position);
    const std::string saved_at = std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                    std::chrono::system_clock::now().time_since_epoch())
                                                    .count());
    connection.exec(
        "INSERT INTO " + quoted_identifier(schema) +
            ".krmx_checkpoints (key, state, position, version, saved_at) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state, position = excluded.position, "
            "version = excluded.version, saved_at = excluded.saved_at",
        {key, state, position, checkpoint.version, saved_at});
}

/// Whether there was a checkpoint to remove.
inline bool erase_checkpoint_row(PgConnection& connection, const std::string& schema, std::string_view key) {
    if (checkpoint_key_problem(key)) return false;
    return connection
               .exec("DELETE FROM " + quoted_identifier(schema) +
                         ".krmx_checkpoints WHERE key = $1 RETURNING 1",
                     {key})
               .rows() > 0;
}

}  // namespace krmx::detail
